namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Loads CUB-200-2011 in its official layout: <c>images.txt</c> ("id relative/path.jpg"), <c>image_class_labels.txt</c>
/// ("id class", class 1-based), <c>train_test_split.txt</c> ("id is_training"), <c>classes.txt</c> ("class name"),
/// and <c>images/</c>. <paramref name="root"/> is that folder or its parent containing <c>CUB_200_2011/</c>.
/// Labels are the official class ids minus one.
/// </summary>
public static class Cub200Loader
{
    public const string Folder = "CUB_200_2011";

    public static DatasetSplits Load(string root)
    {
        var folder = File.Exists(Path.Combine(root, "images.txt")) ? root : Path.Combine(root, Folder);
        foreach (var required in new[] { "images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt" })
            if (!File.Exists(Path.Combine(folder, required)))
                throw ContinualMoEException.ForFile(Path.Combine(folder, required),
                    "missing: not a CUB-200-2011 folder (expected images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/)");

        var classesFile = Path.Combine(folder, "classes.txt");
        var classes = ReadPairs(classesFile);
        var classNames = new string[classes.Count];
        for (var i = 0; i < classes.Count; i++)
        {
            var (id, name) = classes[i];
            if (id != i + 1) throw ContinualMoEException.ForFile(classesFile, $"line {i + 1}: expected class id {i + 1}, found {id}");
            classNames[i] = name;
        }

        var imagesFile = Path.Combine(folder, "images.txt");
        var labelsFile = Path.Combine(folder, "image_class_labels.txt");
        var splitFile = Path.Combine(folder, "train_test_split.txt");
        var paths = ReadPairs(imagesFile).ToDictionary(p => p.Id, p => p.Value);
        var labels = ReadPairs(labelsFile).ToDictionary(p => p.Id, p => ParseInt(labelsFile, p.Value));
        var split = ReadPairs(splitFile).ToDictionary(p => p.Id, p => ParseInt(splitFile, p.Value));

        var train = (Paths: new List<string>(), Labels: new List<int>());
        var test = (Paths: new List<string>(), Labels: new List<int>());
        foreach (var (id, relative) in paths.OrderBy(p => p.Key))
        {
            if (!labels.TryGetValue(id, out var label))
                throw ContinualMoEException.ForFile(labelsFile, $"image id {id} has no label");
            if (label < 1 || label > classNames.Length)
                throw ContinualMoEException.ForFile(labelsFile, $"image id {id} has label {label}, outside 1..{classNames.Length}");
            if (!split.TryGetValue(id, out var isTrain))
                throw ContinualMoEException.ForFile(splitFile, $"image id {id} is not assigned to train or test");
            var target = isTrain == 1 ? train : test;
            target.Paths.Add(Path.Combine(folder, "images", relative));
            target.Labels.Add(label - 1);
        }
        return new DatasetSplits(
            new FileImageDataset("cub200-train", classNames, train.Paths, train.Labels),
            new FileImageDataset("cub200-test", classNames, test.Paths, test.Labels));
    }

    private static List<(int Id, string Value)> ReadPairs(string path)
    {
        var result = new List<(int, string)>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            var trimmed = line.Trim();
            if (trimmed.Length == 0) continue;
            var space = trimmed.IndexOf(' ');
            if (space <= 0 || !int.TryParse(trimmed.AsSpan(0, space), out var id))
                throw ContinualMoEException.ForFile(path, $"line {lineNumber}: expected \"<id> <value>\", found \"{trimmed}\"");
            result.Add((id, trimmed[(space + 1)..].Trim()));
        }
        return result;
    }

    private static int ParseInt(string path, string value) =>
        int.TryParse(value, out var n) ? n : throw ContinualMoEException.ForFile(path, $"expected an integer, found \"{value}\"");
}
