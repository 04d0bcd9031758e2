namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Loads a folder with one subfolder per class (torchvision ImageFolder layout; ImageNet-R ships this way).
/// Class ids follow the ordinal-sorted subfolder names.
/// <list type="bullet">
/// <item>If the folder has <c>train/</c> and <c>test/</c> (or <c>val/</c>) subfolders, those are the split; the test
/// classes must be a subset of the train classes.</item>
/// <item>Otherwise the split is made here, stratified per class: each class's files (sorted by name) are shuffled with
/// <c>new Random(Seeds.Combine(splitSeed, classId))</c> and the first round(count * testFraction) go to test. The
/// continual-learning literature (CODA-Prompt, PILOT) uses an 80/20 random split for ImageNet-R, hence the 0.2
/// default.</item>
/// </list>
/// </summary>
public static class ImageFolderLoader
{
    public const double DefaultTestFraction = 0.2;

    public static DatasetSplits Load(string root, string name, double testFraction = DefaultTestFraction, int splitSeed = 0)
    {
        if (!Directory.Exists(root)) throw ContinualMoEException.ForFile(root, "image folder not found");
        var train = Path.Combine(root, "train");
        var test = new[] { "test", "val" }.Select(s => Path.Combine(root, s)).FirstOrDefault(Directory.Exists);
        if (Directory.Exists(train) && test != null)
        {
            var (classNames, trainFiles) = Scan(train);
            var (testClassNames, testFiles) = Scan(test);
            var ids = classNames.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
            foreach (var c in testClassNames)
                if (!ids.ContainsKey(c))
                    throw ContinualMoEException.ForFile(Path.Combine(test, c), "class folder has no counterpart in train/");
            return new DatasetSplits(
                Build($"{name}-train", classNames, trainFiles.SelectMany((files, c) => files.Select(f => (f, c)))),
                Build($"{name}-test", classNames, testFiles.SelectMany((files, c) => files.Select(f => (f, ids[testClassNames[c]])))));
        }

        if (testFraction is < 0 or >= 1)
            throw new ContinualMoEException($"test fraction {testFraction} must be in [0, 1)");
        var (names, perClass) = Scan(root);
        var trainSamples = new List<(string, int)>();
        var testSamples = new List<(string, int)>();
        for (var c = 0; c < names.Count; c++)
        {
            var files = perClass[c].ToArray();
            var random = new Random(Seeds.Combine(splitSeed, c));
            Seeds.Shuffle(random, files);
            var testCount = (int)Math.Round(files.Length * testFraction, MidpointRounding.AwayFromZero);
            // Keep at least one training image per class, otherwise the class would be unlearnable.
            testCount = Math.Min(testCount, files.Length - 1);
            var testSet = files.Take(testCount).ToHashSet(StringComparer.Ordinal);
            foreach (var file in perClass[c]) (testSet.Contains(file) ? testSamples : trainSamples).Add((file, c));
        }
        return new DatasetSplits(Build($"{name}-train", names, trainSamples), Build($"{name}-test", names, testSamples));
    }

    /// <summary>Class names (sorted subfolders) and, per class, its image files sorted by name.</summary>
    private static (IReadOnlyList<string> Names, List<string>[] Files) Scan(string folder)
    {
        var classFolders = Directory.GetDirectories(folder)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal)
            .ToArray();
        if (classFolders.Length == 0)
            throw ContinualMoEException.ForFile(folder, "expected one subfolder per class (ImageFolder layout), found no subfolders");
        var files = new List<string>[classFolders.Length];
        for (var c = 0; c < classFolders.Length; c++)
        {
            files[c] = Directory.EnumerateFiles(classFolders[c], "*", SearchOption.AllDirectories)
                .Where(ImageDecoder.IsImageFile)
                .OrderBy(f => f, StringComparer.Ordinal)
                .ToList();
            if (files[c].Count == 0)
                throw ContinualMoEException.ForFile(classFolders[c],
                    $"class folder contains no images ({string.Join(", ", ImageDecoder.Extensions.Order())})");
        }
        return (classFolders.Select(d => Path.GetFileName(d)!).ToArray(), files);
    }

    private static FileImageDataset Build(string name, IReadOnlyList<string> classNames, IEnumerable<(string Path, int Label)> samples)
    {
        var list = samples.ToList();
        return new FileImageDataset(name, classNames, list.Select(s => s.Path).ToArray(), list.Select(s => s.Label).ToArray());
    }
}
