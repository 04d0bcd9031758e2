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
/// <item>With split lists (<see cref="LoadFromLists"/>), the listed files are the split: e.g. the official SMoPE /
/// CODA-Prompt ImageNet-R lists (dataloaders/splits/imagenet-r_{train,test}.yaml), with their class ids.</item>
/// <item>With <see cref="Splitting.RandomSplit"/> (run setting <c>split: random-split</c>), a folder without
/// <c>train/</c> and <c>test/</c> is split as the official HiDe-Prompt / NoRGa <c>Imagenet_R</c> class does
/// (continual_datasets/continual_datasets.py): torchvision ImageFolder's file list, then
/// <c>torch.utils.data.random_split</c> into int(0.8 n) training and the rest test images, i.e. torch's CPU
/// <c>randperm(n)</c> after <c>torch.manual_seed(seed)</c> (main.py seeds torch before the dataset is built). TorchSharp
/// runs the same libtorch generator, so the split is the same file for file (tested against PyTorch).</item>
/// </list>
/// The official code moves the split files into <c>train/</c> and <c>test/</c>; a folder it has split loads as the first case.
/// </summary>
public static class ImageFolderLoader
{
    public const double DefaultTestFraction = 0.2;

    /// <summary>How a folder without train/ and test/ is split.</summary>
    public enum Splitting
    {
        /// <summary>Stratified per class, seeded per class (the project's split).</summary>
        PerClass,
        /// <summary>torch.utils.data.random_split of the whole folder (the official HiDe-Prompt / NoRGa ImageNet-R split).</summary>
        RandomSplit,
    }

    public static Splitting ParseSplitting(string name) => name.Trim().ToLowerInvariant() switch
    {
        "per-class" => Splitting.PerClass,
        "random-split" => Splitting.RandomSplit,
        _ => throw new ContinualMoEException($"split must be per-class or random-split, got '{name}'"),
    };

    public static DatasetSplits Load(string root, string name, double testFraction = DefaultTestFraction, int splitSeed = 0,
        IReadOnlyList<string>? splitFiles = null, Splitting splitting = Splitting.PerClass)
    {
        if (!Directory.Exists(root)) throw ContinualMoEException.ForFile(root, "image folder not found");
        if (splitFiles is not null)
        {
            if (splitFiles.Count != 2) throw new ContinualMoEException($"split_files needs two files (train list, test list), got {splitFiles.Count}");
            return LoadFromLists(root, name, splitFiles[0], splitFiles[1]);
        }
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
        if (splitting == Splitting.RandomSplit) return LoadRandomSplit(root, name, 1 - testFraction, splitSeed);
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

    /// <summary>
    /// Loads the images named by a train list and a test list. A list is either the official SMoPE YAML
    /// (<c>data:</c> followed by "- path" lines, then <c>targets:</c> followed by "- label" lines) or plain text with one
    /// "path [label]" per line ('#' starts a comment). Only the last two components of each path (class folder / file)
    /// are used, resolved under <paramref name="root"/>. With labels, they are the class ids (every id 0..K-1 must
    /// occur, each with one class folder); without, classes are the ordinal-sorted folder names of both lists.
    /// </summary>
    public static DatasetSplits LoadFromLists(string root, string name, string trainList, string testList)
    {
        var train = ReadList(trainList, root);
        var test = ReadList(testList, root);
        if ((train.Labels is null) != (test.Labels is null))
            throw ContinualMoEException.ForFile(testList, "one split list has labels and the other has none; give labels in both or in neither");
        string[] classNames;
        if (train.Labels is null)
        {
            classNames = train.Folders.Concat(test.Folders).Distinct().Order(StringComparer.Ordinal).ToArray();
            var ids = classNames.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
            train = train with { Labels = train.Folders.Select(f => ids[f]).ToArray() };
            test = test with { Labels = test.Folders.Select(f => ids[f]).ToArray() };
        }
        else
        {
            var folderOf = new Dictionary<int, string>();
            foreach (var (list, file) in new[] { (train, trainList), (test, testList) })
                for (var i = 0; i < list.Paths.Length; i++)
                {
                    var label = list.Labels![i];
                    if (label < 0) throw ContinualMoEException.ForFile(file, $"entry {i + 1}: negative class id {label}");
                    if (folderOf.TryGetValue(label, out var folder) && folder != list.Folders[i])
                        throw ContinualMoEException.ForFile(file, $"class id {label} is given to two folders, {folder} and {list.Folders[i]}");
                    folderOf[label] = list.Folders[i];
                }
            var count = folderOf.Keys.Max() + 1;
            if (folderOf.Count != count)
                throw ContinualMoEException.ForFile(trainList, $"class ids must cover 0..{count - 1}; {count - folderOf.Count} are missing");
            classNames = Enumerable.Range(0, count).Select(c => folderOf[c]).ToArray();
        }
        return new DatasetSplits(Build($"{name}-train", classNames, train.Paths.Zip(train.Labels!)),
            Build($"{name}-test", classNames, test.Paths.Zip(test.Labels!)));
    }

    private sealed record SplitList(string[] Paths, string[] Folders, int[]? Labels);

    private static SplitList ReadList(string file, string root)
    {
        if (!File.Exists(file)) throw ContinualMoEException.ForFile(file, "split list not found");
        var entries = new List<string>();
        var labels = new List<int>();
        var section = "";
        var yaml = false;
        var lineNumber = 0;
        foreach (var raw in File.ReadLines(file))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line is "data:" or "targets:") { section = line; yaml = true; continue; }
            if (yaml)
            {
                if (!line.StartsWith("- ")) throw ContinualMoEException.ForFile(file, $"line {lineNumber}: expected \"- value\" under {section}");
                var value = line[2..].Trim().Trim('\'', '"');
                if (section == "data:") entries.Add(value);
                else if (int.TryParse(value, out var label)) labels.Add(label);
                else throw ContinualMoEException.ForFile(file, $"line {lineNumber}: \"{value}\" is not an integer class id");
                continue;
            }
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            entries.Add(parts[0]);
            if (parts.Length > 1)
            {
                if (!int.TryParse(parts[1], out var label))
                    throw ContinualMoEException.ForFile(file, $"line {lineNumber}: \"{parts[1]}\" is not an integer class id");
                labels.Add(label);
            }
        }
        if (entries.Count == 0) throw ContinualMoEException.ForFile(file, "split list names no images");
        if (labels.Count != 0 && labels.Count != entries.Count)
            throw ContinualMoEException.ForFile(file, $"{entries.Count} images but {labels.Count} class ids");
        var paths = new string[entries.Count];
        var folders = new string[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            var parts = entries[i].Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) throw ContinualMoEException.ForFile(file, $"entry {i + 1} (\"{entries[i]}\") needs a class folder and a file name");
            folders[i] = parts[^2];
            paths[i] = Path.Combine(root, parts[^2], parts[^1]);
            if (!File.Exists(paths[i])) throw ContinualMoEException.ForFile(file, $"entry {i + 1}: image {paths[i]} not found under the data root");
        }
        return new SplitList(paths, folders, labels.Count == 0 ? null : labels.ToArray());
    }

    /// <summary>The official HiDe-Prompt split (see the class summary): the first int(trainFraction x n) entries of torch's
    /// randperm(n) under <paramref name="seed"/> index the training files of <see cref="TorchvisionImageFolder"/>'s list.</summary>
    public static DatasetSplits LoadRandomSplit(string root, string name, double trainFraction, int seed)
    {
        var (classNames, samples) = TorchvisionImageFolder(root);
        var trainSize = (int)(trainFraction * samples.Count);   // Python int(0.8 * len(dataset)): truncation
        var permutation = TorchRandomPermutation(samples.Count, seed);
        var isTrain = new bool[samples.Count];
        foreach (var i in permutation.Take(trainSize)) isTrain[i] = true;
        // Each part in list order: the official code re-reads the moved files with ImageFolder, which sorts them again.
        return new DatasetSplits(
            Build($"{name}-train", classNames, samples.Where((_, i) => isTrain[i])),
            Build($"{name}-test", classNames, samples.Where((_, i) => !isTrain[i])));
    }

    /// <summary>torch's CPU <c>randperm(n)</c> from a generator seeded with <paramref name="seed"/> (the same stream as the
    /// default generator after <c>torch.manual_seed(seed)</c>), without touching the global generator.</summary>
    public static long[] TorchRandomPermutation(int n, long seed)
    {
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        using var permutation = TorchSharp.torch.randperm(n, generator: generator);
        return permutation.data<long>().ToArray();
    }

    /// <summary>torchvision ImageFolder's samples: classes are the sorted subfolder names (hidden ones included), and per
    /// class the files with torchvision's image extensions (case-insensitive) in sorted(os.walk(class folder)) order,
    /// each folder's file names sorted; sorting is by code point, i.e. ordinal.</summary>
    public static (IReadOnlyList<string> ClassNames, List<(string Path, int Label)> Samples) TorchvisionImageFolder(string root)
    {
        string[] extensions = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];
        var classFolders = Directory.GetDirectories(root).OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal).ToArray();
        if (classFolders.Length == 0)
            throw ContinualMoEException.ForFile(root, "expected one subfolder per class (ImageFolder layout), found no subfolders");
        var samples = new List<(string, int)>();
        for (var c = 0; c < classFolders.Length; c++)
        {
            var folders = new[] { classFolders[c] }.Concat(Directory.GetDirectories(classFolders[c], "*", SearchOption.AllDirectories))
                .OrderBy(d => d, StringComparer.Ordinal);
            foreach (var folder in folders)
                foreach (var file in Directory.GetFiles(folder).OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal))
                    if (extensions.Any(e => Path.GetFileName(file).ToLowerInvariant().EndsWith(e, StringComparison.Ordinal)))
                        samples.Add((file, c));
        }
        if (samples.Count == 0) throw ContinualMoEException.ForFile(root, "the class folders contain no images");
        return (classFolders.Select(d => Path.GetFileName(d)!).ToArray(), samples);
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
