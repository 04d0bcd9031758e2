using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;

namespace ContinualMoE.Tests.Data;

public class ImageFileLoaderTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-images-");
    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void DecodesPngGreyAndRgb()
    {
        var rgb = TestFiles.Pattern(5, 3, 3, seed: 1);
        var decoded = ImageDecoder.Decode(TestFiles.EncodePng(rgb), "rgb.png");
        Assert.Equal(rgb, decoded with { Pixels = rgb.Pixels });
        Assert.Equal(rgb.Pixels, decoded.Pixels);
        var grey = TestFiles.Pattern(4, 6, 1, seed: 2);
        var greyDecoded = ImageDecoder.Decode(TestFiles.EncodePng(grey), "grey.png");
        Assert.Equal(1, greyDecoded.Channels);
        Assert.Equal(grey.Pixels, greyDecoded.Pixels);
    }

    [Fact]
    public void ImageFolderWithoutSplitIsSplitPerClassBySeed()
    {
        // ImageNet-R layout: one folder per class (WordNet ids), images inside.
        foreach (var (cls, count) in new[] { ("n01443537", 10), ("n01484850", 5), ("n01494475", 1) })
            for (var i = 0; i < count; i++)
                TestFiles.WritePng(Path.Combine(_root, cls, $"art_{i}.png"), TestFiles.Pattern(6, 4, 3, i));
        File.WriteAllText(Path.Combine(_root, "n01443537", "README.txt"), "not an image");

        var data = ImageFolderLoader.Load(_root, "imagenet-r", testFraction: 0.2, splitSeed: 4);
        Assert.Equal(new[] { "n01443537", "n01484850", "n01494475" }, data.Train.ClassNames);
        Assert.Equal(2 + 1 + 0, data.Test.Count);
        Assert.Equal(8 + 4 + 1, data.Train.Count);
        Assert.Equal(new[] { 0, 0, 1 }, data.Test.Labels());
        var trainFiles = Enumerable.Range(0, data.Train.Count).Select(((FileImageDataset)data.Train).PathOf);
        var testFiles = Enumerable.Range(0, data.Test.Count).Select(((FileImageDataset)data.Test).PathOf);
        Assert.Empty(trainFiles.Intersect(testFiles));
        for (var i = 0; i < data.Train.Count; i++)
        {
            var number = int.Parse(Path.GetFileNameWithoutExtension(((FileImageDataset)data.Train).PathOf(i))["art_".Length..]);
            Assert.Equal(TestFiles.Pattern(6, 4, 3, number).Pixels, data.Train.GetImage(i).Pixels);
        }

        var again = ImageFolderLoader.Load(_root, "imagenet-r", 0.2, splitSeed: 4);
        Assert.Equal(testFiles, Enumerable.Range(0, again.Test.Count).Select(((FileImageDataset)again.Test).PathOf));
        var other = ImageFolderLoader.Load(_root, "imagenet-r", 0.2, splitSeed: 5);
        Assert.NotEqual(testFiles, Enumerable.Range(0, other.Test.Count).Select(((FileImageDataset)other.Test).PathOf));

        // Decoding is lazy and thread-safe.
        var images = new RawImage[data.Train.Count];
        Parallel.For(0, images.Length, i => images[i] = data.Train.GetImage(i));
        Assert.All(images, image => Assert.Equal(24 * 3, image.Pixels.Length));
    }

    [Fact]
    public void ImageFolderWithTrainAndTestFoldersUsesThem()
    {
        TestFiles.WritePng(Path.Combine(_root, "train", "cat", "1.png"), TestFiles.Pattern(2, 2, 3, 1));
        TestFiles.WritePng(Path.Combine(_root, "train", "dog", "1.png"), TestFiles.Pattern(2, 2, 3, 2));
        TestFiles.WritePng(Path.Combine(_root, "test", "dog", "2.png"), TestFiles.Pattern(2, 2, 1, 3));
        var data = DatasetCatalog.Load("image-folder", new DatasetOptions { Root = _root });
        Assert.Equal(2, data.Train.Count);
        Assert.Equal(new[] { 1 }, data.Test.Labels());
        Assert.Equal(1, data.Test.GetImage(0).Channels);
    }

    [Fact]
    public void WrongLayoutAndUndecodableImageAreReported()
    {
        File.WriteAllText(Path.Combine(_root, "loose.png"), "x");
        Assert.Contains("one subfolder per class", Assert.Throws<ContinualMoEException>(() => ImageFolderLoader.Load(_root, "x")).Message);

        var broken = Path.Combine(_root, "cls", "broken.jpg");
        Directory.CreateDirectory(Path.GetDirectoryName(broken)!);
        File.WriteAllBytes(broken, [0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3]);
        TestFiles.WritePng(Path.Combine(_root, "cls", "ok.png"), TestFiles.Pattern(2, 2, 3, 0));
        var data = ImageFolderLoader.Load(_root, "x", testFraction: 0);
        var error = Assert.Throws<ContinualMoEException>(() => data.Train.GetImage(0));
        Assert.StartsWith(broken, error.Message);
        Assert.Contains("cannot decode", error.Message);
    }

    [Fact]
    public void ReadsCub200Layout()
    {
        var folder = Path.Combine(_root, Cub200Loader.Folder);
        TestFiles.WritePng(Path.Combine(folder, "images", "001.Albatross", "a.png"), TestFiles.Pattern(3, 3, 3, 1));
        TestFiles.WritePng(Path.Combine(folder, "images", "002.Auklet", "b.png"), TestFiles.Pattern(3, 3, 3, 2));
        TestFiles.WritePng(Path.Combine(folder, "images", "002.Auklet", "c.png"), TestFiles.Pattern(3, 3, 3, 3));
        File.WriteAllText(Path.Combine(folder, "classes.txt"), "1 001.Albatross\n2 002.Auklet\n");
        File.WriteAllText(Path.Combine(folder, "images.txt"), "1 001.Albatross/a.png\n2 002.Auklet/b.png\n3 002.Auklet/c.png\n");
        File.WriteAllText(Path.Combine(folder, "image_class_labels.txt"), "1 1\n2 2\n3 2\n");
        File.WriteAllText(Path.Combine(folder, "train_test_split.txt"), "1 1\n2 0\n3 1\n");

        var data = DatasetCatalog.Load("cub200", new DatasetOptions { Root = _root });
        Assert.Equal(new[] { 0, 1 }, data.Train.Labels());
        Assert.Equal(new[] { 1 }, data.Test.Labels());
        Assert.Equal("002.Auklet", data.Train.ClassNames[1]);
        Assert.Equal(TestFiles.Pattern(3, 3, 3, 2).Pixels, data.Test.GetImage(0).Pixels);

        File.WriteAllText(Path.Combine(folder, "image_class_labels.txt"), "1 1\n2 3\n3 2\n");
        var error = Assert.Throws<ContinualMoEException>(() => Cub200Loader.Load(_root));
        Assert.Contains("image_class_labels.txt", error.Message);
        Assert.Contains("label 3", error.Message);

        File.Delete(Path.Combine(folder, "classes.txt"));
        Assert.Contains("classes.txt", Assert.Throws<ContinualMoEException>(() => Cub200Loader.Load(_root)).Message);
    }
}
