using ContinualMoE.Data.Loaders;

namespace ContinualMoE.Tests.Data;

/// <summary>ImageNet-R style split lists: the official SMoPE YAML (data: / targets:) and plain "path [label]" text.</summary>
public sealed class SplitListTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-splitlists-");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void MakeImages()
    {
        foreach (var cls in new[] { "n01443537", "n01484850", "n01494475" })
            for (var i = 0; i < 3; i++)
                TestFiles.WritePng(Path.Combine(_root, cls, $"art_{i}.png"), TestFiles.Pattern(6, 4, 3, i));
    }

    [Fact]
    public void SmopeYamlListsGiveTheSplitAndTheirClassIds()
    {
        MakeImages();
        // As in SMoPE's dataloaders/splits: paths under another prefix, class ids that are not the sorted folder order.
        File.WriteAllText(Path.Combine(_root, "train.yaml"), """
            data:
            - data/imagenet-r/n01443537/art_0.png
            - data/imagenet-r/n01484850/art_0.png
            - data/imagenet-r/n01494475/art_0.png
            - data/imagenet-r/n01494475/art_1.png
            targets:
            - 2
            - 0
            - 1
            - 1
            """);
        File.WriteAllText(Path.Combine(_root, "test.yaml"), "data:\n- x/n01443537/art_2.png\n- x/n01484850/art_2.png\ntargets:\n- 2\n- 0\n");
        var data = ImageFolderLoader.Load(_root, "imagenet-r", splitFiles: [Path.Combine(_root, "train.yaml"), Path.Combine(_root, "test.yaml")]);
        Assert.Equal(["n01484850", "n01494475", "n01443537"], data.Train.ClassNames);
        Assert.Equal(4, data.Train.Count);
        Assert.Equal(2, data.Test.Count);
        Assert.Equal([2, 0, 1, 1], Enumerable.Range(0, 4).Select(data.Train.GetLabel));
        Assert.Equal([2, 0], Enumerable.Range(0, 2).Select(data.Test.GetLabel));
    }

    [Fact]
    public void PlainListsWithoutLabelsUseSortedFolderNames()
    {
        MakeImages();
        File.WriteAllText(Path.Combine(_root, "train.txt"), "# train\nn01494475/art_0.png\nn01443537/art_0.png\n");
        File.WriteAllText(Path.Combine(_root, "test.txt"), "n01484850/art_1.png\n");
        var data = ImageFolderLoader.LoadFromLists(_root, "imagenet-r", Path.Combine(_root, "train.txt"), Path.Combine(_root, "test.txt"));
        Assert.Equal(["n01443537", "n01484850", "n01494475"], data.Train.ClassNames);
        Assert.Equal([2, 0], Enumerable.Range(0, 2).Select(data.Train.GetLabel));
        Assert.Equal(1, data.Test.GetLabel(0));
    }

    [Fact]
    public void MissingImageOrInconsistentIdsAreOneLineErrors()
    {
        MakeImages();
        File.WriteAllText(Path.Combine(_root, "missing.txt"), "n01443537/art_9.png\n");
        File.WriteAllText(Path.Combine(_root, "clash.txt"), "n01443537/art_0.png 0\nn01484850/art_0.png 0\n");
        File.WriteAllText(Path.Combine(_root, "ok.txt"), "n01443537/art_1.png 0\n");
        var missing = Assert.Throws<ContinualMoEException>(() =>
            ImageFolderLoader.LoadFromLists(_root, "r", Path.Combine(_root, "missing.txt"), Path.Combine(_root, "ok.txt")));
        Assert.Contains("not found", missing.Message);
        var clash = Assert.Throws<ContinualMoEException>(() =>
            ImageFolderLoader.LoadFromLists(_root, "r", Path.Combine(_root, "clash.txt"), Path.Combine(_root, "ok.txt")));
        Assert.Contains("two folders", clash.Message);
    }
}
