using ContinualMoE.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

public class StateDictLoaderTests
{
    private static Dictionary<string, Tensor> Snapshot(TinyVit model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    [Fact]
    public void ReportsMissingAndUnexpectedKeys()
    {
        var source = Snapshot(new TinyVit());
        source.Remove("blocks.1.mlp.fc2.bias");
        source["extra.thing"] = zeros(3);
        var target = new TinyVit();

        var report = StateDictLoader.Load(target, source, new LoadOptions());

        Assert.Equal(new[] { "blocks.1.mlp.fc2.bias" }, report.Missing);
        Assert.Equal(new[] { "extra.thing" }, report.Unexpected);
        Assert.Empty(report.ShapeMismatches);
        Assert.True(Same(source["blocks.0.attn.qkv.weight"], target.state_dict()["blocks.0.attn.qkv.weight"]));
        Assert.Contains("missing from file (1): blocks.1.mlp.fc2.bias", report.Describe());
        Assert.Contains("not in module (1): extra.thing", report.ToString());
    }

    [Fact]
    public void HeadOfAnotherSizeIsSkippedAndTheRestLoaded()
    {
        var source = Snapshot(new TinyVit(classes: 10));
        var target = new TinyVit(classes: 5);
        var headBefore = target.head.weight!.detach().clone();

        var report = StateDictLoader.Load(target, source, new LoadOptions());

        Assert.True(report.SkippedHead);
        Assert.Equal(new[] { "head.weight", "head.bias" }, report.ShapeMismatches.Select(m => m.Name).OrderByDescending(n => n));
        Assert.True(Same(headBefore, target.head.weight!));
        Assert.True(Same(source["pos_embed"], target.pos_embed));
        Assert.True(Same(source["blocks.1.mlp.fc1.weight"], target.state_dict()["blocks.1.mlp.fc1.weight"]));
        Assert.Contains("skipped classifier head", report.Describe());
        Assert.True(target.pos_embed.requires_grad, "loading must keep parameters trainable");
    }

    [Fact]
    public void OtherShapeMismatchThrowsNamingTheParameterUnlessAllowed()
    {
        var source = Snapshot(new TinyVit());
        source["blocks.0.mlp.fc1.bias"] = zeros(7);

        var error = Assert.Throws<ContinualMoEException>(() => StateDictLoader.Load(new TinyVit(), source, new LoadOptions()));
        Assert.Contains("blocks.0.mlp.fc1.bias", error.Message);

        var report = StateDictLoader.Load(new TinyVit(), source, new LoadOptions { AllowShapeMismatches = true });
        Assert.Equal("blocks.0.mlp.fc1.bias", Assert.Single(report.ShapeMismatches).Name);
        Assert.False(report.SkippedHead);
    }

    [Fact]
    public void PositionEmbeddingIsResizedOnlyWithAResizer()
    {
        var source = Snapshot(new TinyVit(patches: 16));

        Assert.Throws<ContinualMoEException>(() => StateDictLoader.Load(new TinyVit(patches: 4), source, new LoadOptions()));

        var target = new TinyVit(patches: 4);
        long[]? requested = null;
        var report = StateDictLoader.Load(target, source, new LoadOptions
        {
            // Stand-in for the ViT's bicubic grid interpolation: keep the cls token and the first patches.
            PositionEmbeddingResizer = (pe, shape) => { requested = shape; return pe[.., ..(int)shape[1], ..].clone(); },
        });

        Assert.True(report.ResizedPositionEmbedding);
        Assert.Equal(new long[] { 1, 5, TinyVit.Dim }, requested);
        Assert.True(Same(source["pos_embed"][.., ..5, ..], target.pos_embed));
    }

    [Fact]
    public void SaveThenLoadRestoresTheModelAndConvertsDtype()
    {
        using var dir = new TempDirectory();
        var model = new TinyVit();
        var path = dir.File("model.safetensors");
        StateDictLoader.Save(model, path, new Dictionary<string, string> { ["task"] = "0" });

        var target = new TinyVit();
        target.to(ScalarType.Float64);
        var report = StateDictLoader.Load(target, SafeTensorsFile.Read(path), new LoadOptions());

        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Equal("0", SafeTensorsFile.ReadMetadata(path)["task"]);
        Assert.Equal(ScalarType.Float64, target.pos_embed.dtype);
        foreach (var (name, expected) in model.state_dict())
            Assert.True(Same(expected.to(ScalarType.Float64), target.state_dict()[name]), name);
    }
}
