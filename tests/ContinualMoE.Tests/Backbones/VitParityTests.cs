using ContinualMoE.Backbones;
using ContinualMoE.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

/// <summary>
/// The C# ViT against an independent PyTorch implementation (tools/make_vit_parity_fixture.py, run with Debian's
/// python3-torch): same weights under timm's names, same input, outputs equal to 1e-4, with and without per-sample prefixes.
/// </summary>
public class VitParityTests
{
    private static readonly string FixturePath = Path.Combine(AppContext.BaseDirectory, "Fixtures", "vit_parity.safetensors");

    private sealed class FixturePrefixes(Dictionary<string, Tensor> fixture) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) =>
            AttentionPrefix.FromKeysAndValues(fixture[$"input.prefix.{blockIndex}.keys"], fixture[$"input.prefix.{blockIndex}.values"]);
    }

    private static (VisionTransformer Vit, Dictionary<string, Tensor> Fixture) Load()
    {
        var fixture = SafeTensorsFile.Read(FixturePath);
        var vit = new VisionTransformer(VitTestModels.Parity);
        var weights = fixture.Where(kv => !kv.Key.StartsWith("input.") && !kv.Key.StartsWith("expected.")).ToDictionary(kv => kv.Key, kv => kv.Value);
        var report = StateDictLoader.Load(vit, weights);
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        return (vit, fixture);
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference < 1e-4, $"{what}: max difference {difference}");
    }

    [Fact]
    public void ForwardMatchesTheIndependentPyTorchImplementation()
    {
        var (vit, fixture) = Load();
        using var noGrad = no_grad();
        using var output = vit.ForwardFeatures(fixture["input.images"]);
        AssertClose(fixture["expected.cls"], output.Cls, "class-token feature");
        AssertClose(fixture["expected.logits"], vit.Head.forward(output.Cls), "logits");
    }

    [Fact]
    public void PrefixedForwardMatchesTheIndependentPyTorchImplementation()
    {
        var (vit, fixture) = Load();
        using var noGrad = no_grad();
        using var output = vit.ForwardFeatures(fixture["input.images"], new VitForwardOptions { Prefixes = new FixturePrefixes(fixture) });
        AssertClose(fixture["expected.prefixed.cls"], output.Cls, "prefixed class-token feature");
        AssertClose(fixture["expected.prefixed.logits"], vit.Head.forward(output.Cls), "prefixed logits");
        // The prefixes change the result: the test would catch a hook that silently ignores them.
        Assert.True((fixture["expected.prefixed.cls"] - fixture["expected.cls"]).abs().max().item<float>() > 1e-2);
    }
}
