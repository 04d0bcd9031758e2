using System.Text.Json;
using ContinualMoE.Data;
using ContinualMoE.Data.Loaders;
using ContinualMoE.Experiments;
using ContinualMoE.Tests.Checkpoints;

namespace ContinualMoE.Tests.Data;

/// <summary>
/// The official HiDe-Prompt / NoRGa ImageNet-R split. Fixtures/random_split.json is written by
/// tools/make_random_split_fixture.py, which runs the official Imagenet_R class (torchvision ImageFolder listing +
/// torch.utils.data.random_split after torch.manual_seed(42)) on a small made-up folder, and PyTorch's randperm.
/// </summary>
public class RandomSplitParityTests
{
    private static readonly JsonElement Fixture =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "random_split.json"))).RootElement;

    /// <summary>TorchSharp's libtorch (2.10) draws the same CPU permutation as the PyTorch that wrote the fixture
    /// (Debian's 1.13), including ImageNet-R's 30000 images.</summary>
    [Fact]
    public void TorchSharpRandpermEqualsPyTorchs()
    {
        foreach (var entry in Fixture.GetProperty("randperm").EnumerateArray())
        {
            var seed = entry.GetProperty("seed").GetInt32();
            var n = entry.GetProperty("n").GetInt32();
            var permutation = ImageFolderLoader.TorchRandomPermutation(n, seed);
            Assert.Equal(entry.GetProperty("first").EnumerateArray().Select(e => e.GetInt64()), permutation.Take(32));
            long checksum = 0;
            for (var i = 0; i < n; i++) checksum = (checksum + i * permutation[i]) % 1_000_000_007;
            Assert.Equal(entry.GetProperty("checksum").GetInt64(), checksum);
        }
    }

    [Fact]
    public void RandomSplitReproducesTheOfficialImagenetRSplitFileForFile()
    {
        using var temp = new TempDirectory();
        foreach (var file in Fixture.GetProperty("files").EnumerateArray())
        {
            var path = Path.Combine(temp.Path, file.GetString()!);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, []);
        }
        var splits = ImageFolderLoader.Load(temp.Path, "imagenet-r", splitSeed: Fixture.GetProperty("seed").GetInt32(),
            splitting: ImageFolderLoader.Splitting.RandomSplit);
        Assert.Equal(Fixture.GetProperty("classes").EnumerateArray().Select(e => e.GetString()), splits.Train.ClassNames);
        AssertSamples(Fixture.GetProperty("train"), (FileImageDataset)splits.Train, temp.Path);
        AssertSamples(Fixture.GetProperty("test"), (FileImageDataset)splits.Test, temp.Path);

        // The project's per-class split of the same folder is a different split.
        var perClass = ImageFolderLoader.Load(temp.Path, "imagenet-r", splitSeed: 42);
        Assert.NotEqual(Relative((FileImageDataset)splits.Train, temp.Path), Relative((FileImageDataset)perClass.Train, temp.Path));
    }

    [Fact]
    public void SplitSettingIsCheckedAndThePaperPresetsUseTheOfficialSplit()
    {
        var error = Assert.Throws<ContinualMoEException>(() => Experiment.LoadData(new RunConfig { Split = "halves" }));
        Assert.Contains("split must be per-class or random-split", error.Message);
        foreach (var file in new[] { "hide-prompt-imagenet-r-sup21k.json", "norga-imagenet-r-sup21k.json" })
        {
            var path = Path.Combine(RepositoryPaths.Configs, file);
            var config = RunConfig.FromJson(File.ReadAllText(path), path);
            Assert.Equal("random-split", config.Split);
            Assert.Equal(42, config.SplitSeed);
        }
    }

    private static List<string> Relative(FileImageDataset dataset, string root) =>
        Enumerable.Range(0, dataset.Count).Select(i => Path.GetRelativePath(root, dataset.PathOf(i)).Replace('\\', '/')).ToList();

    private static void AssertSamples(JsonElement expected, FileImageDataset actual, string root)
    {
        var official = expected.EnumerateArray().Select(e => (e[0].GetString(), e[1].GetInt32())).ToList();
        var ours = Relative(actual, root).Select((p, i) => ((string?)p, actual.GetLabel(i))).ToList();
        Assert.Equal(official, ours);
    }
}
