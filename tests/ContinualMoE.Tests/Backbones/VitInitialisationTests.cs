using ContinualMoE.Backbones;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

/// <summary>
/// The random-weight ViT-B/16 row of <c>bench run</c> gave NaN in the first batch: TorchSharp 0.107's
/// <c>nn.init.trunc_normal_</c> fills every element with the std (0.02) and leaves NaN where a uniform draw is -1
/// (a handful in ViT-B's 85 million weights). These tests fail on that behaviour at tiny sizes.
/// </summary>
public class VitInitialisationTests
{
    [Fact]
    public void TruncatedNormalHasTheRequestedMomentsAndStaysInsideTheCutOffs()
    {
        random.manual_seed(5);
        using var wide = empty(200_000);
        TruncatedNormal.Fill_(wide, std: 0.02);
        Assert.True(wide.isfinite().all().item<bool>());
        Assert.InRange(wide.mean().item<float>(), -3e-4, 3e-4);
        Assert.InRange(wide.std().item<float>(), 0.0198, 0.0202);

        // Cut at one standard deviation around a mean of 3: the truncated normal's std is 0.5396 (not 1), its mean 3.
        using var cut = empty(200_000);
        TruncatedNormal.Fill_(cut, mean: 3, std: 1, a: 2, b: 4);
        Assert.InRange(cut.min().item<float>(), 2f, 2.01f);
        Assert.InRange(cut.max().item<float>(), 3.99f, 4f);
        Assert.InRange(cut.mean().item<float>(), 2.99, 3.01);
        Assert.InRange(cut.std().item<float>(), 0.535, 0.545);
    }

    [Fact]
    public void TruncatedNormalMapsAUniformDrawOfMinusOneToTheLowerCutOffNotNaN()
    {
        // The draw that made NaN: erfinv(-1) = -inf. Fill_ must turn it into the cut-off (PyTorch's clamp does).
        using var t = empty(100_000);
        for (var seed = 0; seed < 3; seed++)
        {
            random.manual_seed(seed);
            TruncatedNormal.Fill_(t, std: 0.02, a: -0.04, b: 0.04);
            Assert.True(t.isfinite().all().item<bool>());
            Assert.True(t.ge(-0.04).all().item<bool>() && t.le(0.04).all().item<bool>());
        }
    }

    [Fact]
    public void RandomViTIsInitialisedLikeTimmAndItsFeaturesAreFinite()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 2);
        var parameters = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in new[] { "pos_embed", "blocks.0.attn.qkv.weight", "blocks.2.mlp.fc1.weight", "head.weight" })
        {
            var p = parameters[name];
            Assert.True(p.isfinite().all().item<bool>(), name);
            // 0.02 is the std of the untruncated draw; a few hundred values estimate it within 20 %.
            Assert.InRange(p.std().item<float>(), 0.016, 0.024);
            Assert.True(p.unique().Item1.numel() > p.numel() / 2, $"{name} has repeated values (constant init)");
        }
        Assert.Equal(0f, parameters["blocks.1.attn.proj.bias"].abs().max().item<float>());
        Assert.True(parameters["cls_token"].abs().max().item<float>() < 1e-4);

        using var noGrad = no_grad();
        random.manual_seed(3);
        using var output = vit.ForwardFeatures(randn(4, 3, 16, 16));
        Assert.True(output.Tokens.isfinite().all().item<bool>());
        // Different patches give different tokens (constant weights made every token's attention and MLP output equal).
        Assert.True(output.Tokens[0].std(0).mean().item<float>() > 1e-3);
    }

    [Fact]
    public void LegacyInitialisationIsWhatTheDefaultBackboneWasPretrainedFrom()
    {
        // The v3 default backbone's recipe: every block weight exactly 0.02 (TorchSharp's faulty fill), kept on purpose.
        Assert.Equal(VitInitialisation.TorchSharp0107Constant, ContinualMoE.Experiments.DefaultBackbone.Settings.Initialisation);
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 2, VitInitialisation.TorchSharp0107Constant);
        var qkv = vit.named_parameters().Single(p => p.name == "blocks.0.attn.qkv.weight").parameter;
        Assert.Equal(0.02f, qkv.min().item<float>());
        Assert.Equal(0.02f, qkv.max().item<float>());
    }

    [Fact]
    public void TaskIdentityHeadsGetTimmsTruncatedNormal()
    {
        random.manual_seed(4);
        var layer = nn.Linear(64, 32);
        TaskIdentityInference.TimmInit(layer);
        Assert.True(layer.weight!.isfinite().all().item<bool>());
        Assert.InRange(layer.weight!.std().item<float>(), 0.018, 0.022);
        Assert.Equal(0f, layer.bias!.abs().max().item<float>());
    }
}
