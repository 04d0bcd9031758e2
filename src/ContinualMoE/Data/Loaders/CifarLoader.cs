namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Reads the "binary version" of CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html).
/// A record is the label byte(s) followed by 3072 pixel bytes: the 1024 red values of the 32x32 image in row-major
/// order, then the 1024 green, then the 1024 blue. CIFAR-10 has one label byte; CIFAR-100 has a coarse then a fine
/// label byte (we use the fine label, as the continual-learning literature does).
/// </summary>
public static class CifarLoader
{
    public const string Cifar10Folder = "cifar-10-batches-bin";
    public const string Cifar100Folder = "cifar-100-binary";
    private const int Side = 32;
    private const int ImageBytes = Side * Side * 3;

    /// <summary>Fallback names, in label order, if batches.meta.txt is missing.</summary>
    public static readonly IReadOnlyList<string> Cifar10ClassNames =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>Loads CIFAR-10 from <paramref name="root"/>, which is either <c>cifar-10-batches-bin/</c> or its parent.</summary>
    public static DatasetSplits LoadCifar10(string root)
    {
        var folder = ResolveFolder(root, Cifar10Folder, "data_batch_1.bin");
        var meta = Path.Combine(folder, "batches.meta.txt");
        var names = File.Exists(meta) ? ReadNames(meta, 10) : Cifar10ClassNames;
        var trainFiles = Enumerable.Range(1, 5).Select(i => Path.Combine(folder, $"data_batch_{i}.bin")).ToArray();
        return new DatasetSplits(
            Read("cifar10-train", trainFiles, labelBytes: 1, names),
            Read("cifar10-test", [Path.Combine(folder, "test_batch.bin")], labelBytes: 1, names));
    }

    /// <summary>Loads CIFAR-100 (fine labels) from <paramref name="root"/>: <c>cifar-100-binary/</c> or its parent.</summary>
    public static DatasetSplits LoadCifar100(string root)
    {
        var folder = ResolveFolder(root, Cifar100Folder, "train.bin");
        var meta = Path.Combine(folder, "fine_label_names.txt");
        if (!File.Exists(meta)) throw ContinualMoEException.ForFile(meta, "missing: CIFAR-100 class names file not found");
        var names = ReadNames(meta, 100);
        return new DatasetSplits(
            Read("cifar100-train", [Path.Combine(folder, "train.bin")], labelBytes: 2, names),
            Read("cifar100-test", [Path.Combine(folder, "test.bin")], labelBytes: 2, names));
    }

    private static string ResolveFolder(string root, string folderName, string probeFile)
    {
        if (File.Exists(Path.Combine(root, probeFile))) return root;
        var nested = Path.Combine(root, folderName);
        if (File.Exists(Path.Combine(nested, probeFile))) return nested;
        throw ContinualMoEException.ForFile(root,
            $"not a CIFAR binary folder: expected {probeFile} in it or in {folderName}/ (the layout of the official binary archive)");
    }

    private static IReadOnlyList<string> ReadNames(string path, int expected)
    {
        var names = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (names.Length != expected)
            throw ContinualMoEException.ForFile(path, $"expected {expected} class names, found {names.Length}");
        return names;
    }

    private static InMemoryImageDataset Read(string name, string[] files, int labelBytes, IReadOnlyList<string> names)
    {
        var recordBytes = labelBytes + ImageBytes;
        var records = new List<(string File, byte[] Data)>();
        long total = 0;
        foreach (var file in files)
        {
            if (!File.Exists(file)) throw ContinualMoEException.ForFile(file, "missing CIFAR batch file");
            var data = File.ReadAllBytes(file);
            if (data.Length == 0 || data.Length % recordBytes != 0)
                throw ContinualMoEException.ForFile(file,
                    $"truncated or not a CIFAR binary batch: {data.Length} bytes is not a whole number of {recordBytes}-byte records");
            records.Add((file, data));
            total += data.Length / recordBytes;
        }

        var pixels = new byte[total * ImageBytes];
        var labels = new int[total];
        var n = 0;
        foreach (var (file, data) in records)
        {
            for (var offset = 0; offset < data.Length; offset += recordBytes, n++)
            {
                // The fine label is the last label byte (CIFAR-100 stores coarse first).
                int label = data[offset + labelBytes - 1];
                if (label >= names.Count)
                    throw ContinualMoEException.ForFile(file,
                        $"record {offset / recordBytes} has label {label}, but the dataset has only {names.Count} classes");
                labels[n] = label;
                Buffer.BlockCopy(data, offset + labelBytes, pixels, n * ImageBytes, ImageBytes);
            }
        }
        return new InMemoryImageDataset(name, names, Side, Side, 3, pixels, labels, planar: true);
    }
}
