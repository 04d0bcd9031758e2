using ContinualMoE.Data.Loaders;

namespace ContinualMoE.Tests.Data;

public class CifarLoaderTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-cifar-");
    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A record: label byte(s), then the R plane, G plane, B plane of a 32x32 image.</summary>
    private static byte[] Record(byte[] labels, byte r, byte g, byte b)
    {
        var record = new byte[labels.Length + 3072];
        labels.CopyTo(record, 0);
        Array.Fill(record, r, labels.Length, 1024);
        Array.Fill(record, g, labels.Length + 1024, 1024);
        Array.Fill(record, b, labels.Length + 2048, 1024);
        record[labels.Length + 1] = 200; // red value of pixel (row 0, column 1)
        return record;
    }

    private string WriteCifar10(Func<int, byte[]>? batch = null)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_root, CifarLoader.Cifar10Folder)).FullName;
        for (var i = 1; i <= 5; i++)
            File.WriteAllBytes(Path.Combine(folder, $"data_batch_{i}.bin"),
                batch?.Invoke(i) ?? [.. Record([(byte)i], 10, 20, 30), .. Record([(byte)(i + 4)], 1, 2, 3)]);
        File.WriteAllBytes(Path.Combine(folder, "test_batch.bin"), Record([9], 7, 8, 9));
        File.WriteAllText(Path.Combine(folder, "batches.meta.txt"),
            string.Join("\n", CifarLoader.Cifar10ClassNames.Select(n => n.ToUpperInvariant())) + "\n\n");
        return folder;
    }

    [Fact]
    public void ReadsCifar10BinaryBatches()
    {
        WriteCifar10();
        var data = CifarLoader.LoadCifar10(_root);
        Assert.Equal(10, data.Train.Count);
        Assert.Equal(1, data.Test.Count);
        Assert.Equal("AIRPLANE", data.Train.ClassNames[0]);
        Assert.Equal(new[] { 1, 5, 2, 6, 3, 7, 4, 8, 5, 9 }, Enumerable.Range(0, 10).Select(data.Train.GetLabel));
        var image = data.Train.GetImage(0);
        Assert.Equal((32, 32, 3), (image.Width, image.Height, image.Channels));
        Assert.Equal((byte)10, image[0, 0, 0]);
        Assert.Equal((byte)20, image[0, 0, 1]);
        Assert.Equal((byte)30, image[5, 7, 2]);
        Assert.Equal((byte)200, image[0, 1, 0]);
        Assert.Equal(9, data.Test.GetLabel(0));
        // The folder itself works as root too.
        Assert.Equal(10, CifarLoader.LoadCifar10(Path.Combine(_root, CifarLoader.Cifar10Folder)).Train.Count);
    }

    [Fact]
    public void ReadsCifar100FineLabels()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_root, CifarLoader.Cifar100Folder)).FullName;
        File.WriteAllBytes(Path.Combine(folder, "train.bin"), [.. Record([3, 77], 1, 2, 3), .. Record([19, 99], 4, 5, 6)]);
        File.WriteAllBytes(Path.Combine(folder, "test.bin"), Record([0, 0], 0, 0, 0));
        File.WriteAllLines(Path.Combine(folder, "fine_label_names.txt"), Enumerable.Range(0, 100).Select(i => $"fine{i}"));
        var data = CifarLoader.LoadCifar100(_root);
        Assert.Equal(new[] { 77, 99 }, new[] { data.Train.GetLabel(0), data.Train.GetLabel(1) });
        Assert.Equal(100, data.Train.ClassNames.Count);
        Assert.Equal((byte)5, data.Train.GetImage(1)[31, 31, 1]);
    }

    [Fact]
    public void TruncatedBatchAndBadLabelNameTheFile()
    {
        WriteCifar10(i => i == 3 ? new byte[3073 + 100] : new byte[3073]);
        var error = Assert.Throws<ContinualMoEException>(() => CifarLoader.LoadCifar10(_root));
        Assert.Contains("data_batch_3.bin", error.Message);
        Assert.Contains("truncated", error.Message);

        WriteCifar10(i => i == 2 ? Record([10], 0, 0, 0) : new byte[3073]);
        error = Assert.Throws<ContinualMoEException>(() => CifarLoader.LoadCifar10(_root));
        Assert.Contains("data_batch_2.bin", error.Message);
        Assert.Contains("label 10", error.Message);

        var wrong = Directory.CreateDirectory(Path.Combine(_root, "elsewhere")).FullName;
        error = Assert.Throws<ContinualMoEException>(() => CifarLoader.LoadCifar10(wrong));
        Assert.Contains("cifar-10-batches-bin", error.Message);
    }
}
