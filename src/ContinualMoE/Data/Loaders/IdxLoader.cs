using System.Buffers.Binary;
using System.IO.Compression;

namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Reads MNIST-style IDX files (http://yann.lecun.com/exdb/mnist/): a big-endian magic number (0x00000803 for a
/// 3-d array of unsigned bytes = images, 0x00000801 for a 1-d array = labels), big-endian dimension sizes, then the
/// data. Files may be gzip-compressed (detected from the content, not the name).
/// </summary>
public static class IdxLoader
{
    public const int ImagesMagic = 0x00000803;
    public const int LabelsMagic = 0x00000801;

    public static readonly IReadOnlyList<string> MnistClassNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    public static readonly IReadOnlyList<string> FashionMnistClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>
    /// Loads the four standard files (<c>train-images-idx3-ubyte</c>, <c>train-labels-idx1-ubyte</c>,
    /// <c>t10k-images-idx3-ubyte</c>, <c>t10k-labels-idx1-ubyte</c>, each optionally with <c>.gz</c>) from
    /// <paramref name="root"/> or its <c>raw/</c> subfolder (torchvision's layout).
    /// </summary>
    public static DatasetSplits Load(string root, string name, IReadOnlyList<string> classNames)
    {
        var folder = Directory.Exists(Path.Combine(root, "raw")) && FindFile(Path.Combine(root, "raw"), "train-images-idx3-ubyte") != null
            ? Path.Combine(root, "raw")
            : root;
        string Require(string stem) => FindFile(folder, stem)
            ?? throw ContinualMoEException.ForFile(Path.Combine(folder, stem),
                "missing IDX file (looked for it with and without .gz)");
        return new DatasetSplits(
            Read($"{name}-train", Require("train-images-idx3-ubyte"), Require("train-labels-idx1-ubyte"), classNames),
            Read($"{name}-test", Require("t10k-images-idx3-ubyte"), Require("t10k-labels-idx1-ubyte"), classNames));
    }

    public static InMemoryImageDataset Read(string name, string imagesPath, string labelsPath, IReadOnlyList<string> classNames)
    {
        var (count, rows, cols, pixels) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath, classNames.Count);
        if (labels.Length != count)
            throw ContinualMoEException.ForFile(labelsPath, $"has {labels.Length} labels but {imagesPath} has {count} images");
        return new InMemoryImageDataset(name, classNames, cols, rows, 1, pixels, labels, planar: false);
    }

    public static (int Count, int Rows, int Columns, byte[] Pixels) ReadImages(string path)
    {
        var data = ReadContent(path);
        CheckHeader(path, data, ImagesMagic, dimensions: 3);
        var count = ReadDim(data, 0);
        var rows = ReadDim(data, 1);
        var cols = ReadDim(data, 2);
        const int header = 16;
        var expected = (long)count * rows * cols;
        if (data.Length - header < expected)
            throw ContinualMoEException.ForFile(path,
                $"truncated: header announces {count} images of {rows}x{cols} ({expected} bytes) but only {data.Length - header} bytes follow");
        return (count, rows, cols, data.AsSpan(header, (int)expected).ToArray());
    }

    public static int[] ReadLabels(string path, int classCount)
    {
        var data = ReadContent(path);
        CheckHeader(path, data, LabelsMagic, dimensions: 1);
        var count = ReadDim(data, 0);
        const int header = 8;
        if (data.Length - header < count)
            throw ContinualMoEException.ForFile(path,
                $"truncated: header announces {count} labels but only {data.Length - header} bytes follow");
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            labels[i] = data[header + i];
            if (labels[i] >= classCount)
                throw ContinualMoEException.ForFile(path, $"label {labels[i]} of sample {i} is out of range: there are {classCount} classes");
        }
        return labels;
    }

    private static string? FindFile(string folder, string stem)
    {
        foreach (var candidate in new[] { stem, stem + ".gz" })
        {
            var path = Path.Combine(folder, candidate);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    private static byte[] ReadContent(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "missing IDX file");
        var raw = File.ReadAllBytes(path);
        if (raw.Length < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
        try
        {
            using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var output = new MemoryStream();
            gzip.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw ContinualMoEException.ForFile(path, $"corrupt or truncated gzip data: {e.Message}", e);
        }
        catch (EndOfStreamException e)
        {
            throw ContinualMoEException.ForFile(path, "truncated gzip data", e);
        }
    }

    private static void CheckHeader(string path, byte[] data, int magic, int dimensions)
    {
        var header = 4 + 4 * dimensions;
        if (data.Length >= 4 && BinaryPrimitives.ReadInt32BigEndian(data) is var actual && actual != magic)
            throw ContinualMoEException.ForFile(path, $"not an IDX {(magic == ImagesMagic ? "image" : "label")} file: magic number 0x{actual:X8}, expected 0x{magic:X8}");
        if (data.Length < header)
            throw ContinualMoEException.ForFile(path, $"truncated: {data.Length} bytes is shorter than the {header}-byte IDX header");
        for (var d = 0; d < dimensions; d++)
            if (ReadDim(data, d) < 0) throw ContinualMoEException.ForFile(path, "negative dimension size in IDX header");
    }

    private static int ReadDim(byte[] data, int dimension) => BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4 + 4 * dimension));
}
