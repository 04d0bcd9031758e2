using ContinualMoE.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

/// <summary>Issue 16 §1: a bf16 backbone hands its hooks fp32 tensors, gets fp32 prefixes and deltas back, returns fp32
/// features close to the fp32 backbone's, and gradients reach fp32 parameters.</summary>
public class PrecisionBoundaryTests
{
    /// <summary>A prefix of trainable fp32 keys and values with NoRGa-style logit transform and observer, recording the
    /// dtypes it was given.</summary>
    private sealed class RecordingPrefix(Parameter keys, Parameter values, bool withTransform) : IAttentionPrefixProvider
    {
        public readonly List<ScalarType> Seen = [];
        public AttentionPrefix ForBlock(int blockIndex, Tensor queries)
        {
            Seen.Add(queries.dtype);
            return new AttentionPrefix
            {
                Keys = keys, Values = values,
                LogitTransform = withTransform ? logits => { Seen.Add(logits.dtype); return logits + logits.tanh().mul(0.5); } : null,
                ObserveLogits = withTransform ? logits => Seen.Add(logits.dtype) : null,
            };
        }
    }

    private sealed class RecordingAdapter(Parameter down) : ILinearAdapterProvider
    {
        public readonly List<ScalarType> Seen = [];
        public Tensor? Delta(LinearSite site, Tensor input)
        {
            if (site.Layer != LinearLayers.Query) return null;
            Seen.Add(input.dtype);
            return input.matmul(down);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bf16BackboneCastsAtItsHooksAndStaysCloseToFp32(bool withTransform)
    {
        var config = VitTestModels.Tiny;
        random.manual_seed(11);
        using var fp32 = new VisionTransformer(config, seed: 5);
        using var bf16 = new VisionTransformer(config, seed: 5);
        // Weights of a trained model's scale: timm's init leaves the class token below LayerNorm's epsilon.
        using (no_grad())
        {
            var trained = fp32.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var p in trained.Values) p.normal_(0, 0.2);
            foreach (var (name, p) in bf16.named_parameters()) p.copy_(trained[name]);
        }
        bf16.UseComputeType(ScalarType.BFloat16);
        var images = randn(4, config.InChannels, config.ImageSize, config.ImageSize);
        var keys = new Parameter(randn(1, config.Heads, 3, config.HeadDim));
        var values = new Parameter(randn(1, config.Heads, 3, config.HeadDim));
        var down = new Parameter(randn(config.EmbedDim, config.EmbedDim) * 0.1);

        Tensor Features(VisionTransformer vit, out RecordingPrefix prefix, out RecordingAdapter adapter)
        {
            prefix = new RecordingPrefix(keys, values, withTransform);
            adapter = new RecordingAdapter(down);
            var prompts = randn(1, 2, config.EmbedDim, generator: new Generator(3));
            using var output = vit.ForwardFeatures(images, new VitForwardOptions
            {
                Prefixes = prefix, Adapters = adapter, PromptTokens = prompts, CaptureBlocks = new HashSet<int> { 0 },
            });
            Assert.Equal(ScalarType.Float32, output.BlockTokens[0].dtype);
            Assert.Equal(ScalarType.Float32, output.Tokens.dtype);
            return output.Cls.clone();
        }

        var reference = Features(fp32, out _, out _);
        var reduced = Features(bf16, out var seenPrefix, out var seenAdapter);
        Assert.Equal(ScalarType.Float32, reduced.dtype);
        Assert.All(seenPrefix.Seen, t => Assert.Equal(ScalarType.Float32, t));
        Assert.All(seenAdapter.Seen, t => Assert.Equal(ScalarType.Float32, t));
        Assert.Equal(config.Depth * (withTransform ? 3 : 1), seenPrefix.Seen.Count);
        var error = (reduced - reference).norm().item<float>() / reference.norm().item<float>();
        Assert.InRange(error, 0, 0.05);   // bf16 keeps 8 bits of mantissa: about 0.4% per rounding

        reduced.square().sum().backward();
        foreach (var p in new[] { keys, values, down })
        {
            Assert.NotNull(p.grad);
            Assert.Equal(ScalarType.Float32, p.grad!.dtype);
            Assert.True(p.grad.abs().sum().item<float>() > 0);
        }
        Assert.All(bf16.parameters(), p => Assert.Null(p.grad));
    }
}
