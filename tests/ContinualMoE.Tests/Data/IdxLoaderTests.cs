using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;

namespace ContinualMoE.Tests.Data;

public class IdxLoaderTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-idx-");
    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string name, byte[] data, bool gzip) =>
        File.WriteAllBytes(Path.Combine(_root, gzip ? name + ".gz" : name), gzip ? TestFiles.Gzip(data) : data);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsStandardFilesPlainOrGzipped(bool gzip)
    {
        Write("train-images-idx3-ubyte", TestFiles.IdxImages(3, 4, 5, (i, p) => (byte)(i * 50 + p)), gzip);
        Write("train-labels-idx1-ubyte", TestFiles.IdxLabels(2, 0, 9), gzip);
        Write("t10k-images-idx3-ubyte", TestFiles.IdxImages(1, 4, 5, (_, p) => (byte)p), gzip);
        Write("t10k-labels-idx1-ubyte", TestFiles.IdxLabels(7), gzip);
        var data = IdxLoader.Load(_root, "fashion-mnist", IdxLoader.FashionMnistClassNames);
        Assert.Equal(3, data.Train.Count);
        Assert.Equal(new[] { 2, 0, 9 }, data.Train.Labels());
        var image = data.Train.GetImage(1);
        Assert.Equal((5, 4, 1), (image.Width, image.Height, image.Channels));
        Assert.Equal((byte)(50 + 2 * 5 + 3), image[2, 3, 0]);
        Assert.Equal("Ankle boot", data.Train.ClassNames[9]);
        Assert.Equal("T-shirt/top", data.Train.ClassNames[0]);
        Assert.Equal(7, data.Test.GetLabel(0));
    }

    [Fact]
    public void TruncatedWrongMagicAndBadLabelsAreReported()
    {
        var images = TestFiles.IdxImages(3, 4, 4, (_, _) => 1);
        var path = Path.Combine(_root, "images");
        File.WriteAllBytes(path, images[..^5]);
        var error = Assert.Throws<ContinualMoEException>(() => IdxLoader.ReadImages(path));
        Assert.StartsWith(path, error.Message);
        Assert.Contains("truncated", error.Message);

        File.WriteAllBytes(path, TestFiles.IdxLabels(1, 2));
        Assert.Contains("magic number", Assert.Throws<ContinualMoEException>(() => IdxLoader.ReadImages(path)).Message);

        File.WriteAllBytes(path, TestFiles.Gzip(images)[..20]);
        Assert.StartsWith(path, Assert.Throws<ContinualMoEException>(() => IdxLoader.ReadImages(path)).Message);

        File.WriteAllBytes(path, TestFiles.IdxLabels(1, 10));
        error = Assert.Throws<ContinualMoEException>(() => IdxLoader.ReadLabels(path, 10));
        Assert.Contains("label 10", error.Message);

        Assert.Contains("train-images-idx3-ubyte", Assert.Throws<ContinualMoEException>(
            () => IdxLoader.Load(_root, "mnist", IdxLoader.MnistClassNames)).Message);
    }

    [Fact]
    public void CatalogFindsDebianFashionMnistPackage()
    {
        // scripts/cmoe test installs the package; a machine without it must say so, not pass silently.
        Assert.True(File.Exists(Path.Combine(DatasetCatalog.DebianFashionMnistFolder, "t10k-labels-idx1-ubyte.gz")),
            "Debian's dataset-fashion-mnist is not installed (scripts/cmoe test installs it)");
        var data = DatasetCatalog.Load("fashion-mnist", new DatasetOptions { CacheDirectory = _root });
        Assert.Equal(60000, data.Train.Count);
        Assert.Equal(10000, data.Test.Count);
        var image = data.Test.GetImage(0);
        Assert.Equal((28, 28, 1), (image.Width, image.Height, image.Channels));
        Assert.Equal(9, data.Test.GetLabel(0)); // the first Fashion-MNIST test image is an ankle boot
    }
}
