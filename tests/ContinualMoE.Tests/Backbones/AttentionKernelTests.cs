using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

/// <summary>
/// libtorch's fused attention (the default wherever a block has no prefix or a plain key/value prefix) against the
/// explicit softmax over materialised logits: forward and every gradient a method uses, and a whole ViT's tokens.
/// <para>
/// Tolerance: both paths compute the same sums in fp32 in different orders (the fused kernel accumulates the softmax
/// blockwise with a running maximum), so they differ by rounding only. Measured on this machine: outputs differ by
/// 1.3e-7 to 2.5e-7 of their largest entry (one or two float32 ulps, 1.2e-7). The bound, 2e-5 of the largest entry,
/// leaves a hundredfold headroom for other CPUs' kernels and for gradients (two more reductions), and is far below what
/// a wrong kernel gives (a dropped prefix or a skipped gate changes the output by more than 1e-2, checked below).
/// </para>
/// </summary>
public class AttentionKernelTests
{
    private const double RelativeBound = 2e-5;

    private sealed class FixedPrefix(Func<Tensor, AttentionPrefix?> make) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) => make(queries);
    }

    private sealed record Pass(Tensor Output, Tensor InputGrad, Tensor? KeyGrad, Tensor? ValueGrad);

    private const int Heads = 3;

    /// <summary>Forward and backward through one attention block (random, well-scaled weights) with
    /// <paramref name="kernel"/>: the output and the gradients of the input and of the prefix keys and values.</summary>
    private static Pass Run(AttentionKernel kernel, Tensor x, Tensor? keys, Tensor? values)
    {
        torch.random.manual_seed(5);
        using var attention = new VitAttention(x.shape[2], Heads) { Kernel = kernel };
        var input = x.clone().requires_grad_();
        var k = keys?.clone().requires_grad_();
        var v = values?.clone().requires_grad_();
        var prefixes = k is null ? null : new FixedPrefix(_ => AttentionPrefix.FromKeysAndValues(k, v!));
        var output = attention.Forward(input, prefixes, 0);
        using var weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape);
        output.mul(weights).sum().add(output.square().sum()).backward();
        return new Pass(output.detach().clone(), input.grad!.clone(), k?.grad?.clone(), v?.grad?.clone());
    }

    /// <summary>|actual - expected| within the bound times <paramref name="expected"/>'s largest entry.</summary>
    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var scale = expected.abs().max().item<float>();
        var difference = (actual - expected).abs().max().item<float>();
        Assert.True(difference <= RelativeBound * scale, $"{what}: max difference {difference:E2} against max |value| {scale:E2}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FusedKernelMatchesExplicitSoftmaxForwardAndBackward(bool withPrefix)
    {
        torch.random.manual_seed(21);
        var x = randn(3, 17, 24);
        // Per-sample prefixes, as prompt methods with per-sample selection give them.
        var keys = withPrefix ? randn(3, Heads, 4, 8) : null;
        var values = withPrefix ? randn(3, Heads, 4, 8) : null;

        var fused = Run(AttentionKernel.Auto, x, keys, values);
        var reference = Run(AttentionKernel.Explicit, x, keys, values);

        AssertClose(reference.Output, fused.Output, "output");
        AssertClose(reference.InputGrad, fused.InputGrad, "input gradient");
        if (withPrefix)
        {
            AssertClose(reference.KeyGrad!, fused.KeyGrad!, "prefix key gradient");
            AssertClose(reference.ValueGrad!, fused.ValueGrad!, "prefix value gradient");
            var plain = Run(AttentionKernel.Auto, x, null, null);
            Assert.True((plain.Output - fused.Output).abs().max().item<float>() > 1e-2, "the prefix must change the output");
        }
    }

    /// <summary>In bf16 on the CPU the default kernel is the softmax written out in float32 and cast back once (libtorch's
    /// fused kernel is the slower one there, <c>ComputePrecision.FusedAttentionIsSlower</c>): forward and the gradients of q, k, v
    /// and the prefix are the same bits as <see cref="AttentionKernel.Explicit"/> on float32 copies, with and without a
    /// plain prefix (the fused kernel and a softmax in bf16 both round differently).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InBf16TheDefaultKernelIsTheSoftmaxWrittenOutInFloat32(bool withPrefix)
    {
        torch.random.manual_seed(22);
        var inputs = new List<Tensor> { randn(3, Heads, 17, 8), randn(3, Heads, 17, 8), randn(3, Heads, 17, 8) };
        if (withPrefix) inputs.AddRange([randn(3, Heads, 4, 8), randn(3, Heads, 4, 8)]);
        using var outputWeights = torch.linspace(-1, 1, 3 * Heads * 17 * 8).reshape(3, Heads, 17, 8);

        (Tensor Output, Tensor[] Grads) Pass(AttentionKernel kernel, bool float32Copies)
        {
            var leaves = inputs.Select(t => t.to(ScalarType.BFloat16).requires_grad_()).ToArray();
            var used = leaves.Select(t => float32Copies ? t.to(ScalarType.Float32) : t).ToArray();
            var prefix = withPrefix ? AttentionPrefix.FromKeysAndValues(used[3], used[4]) : null;
            var output = VitAttention.Attend(used[0], used[1], used[2], prefix, kernel);
            if (float32Copies) output = output.to(ScalarType.BFloat16);
            output.to(ScalarType.Float32).mul(outputWeights).sum().backward();
            return (output.detach(), leaves.Select(t => t.grad!).ToArray());
        }

        var auto = Pass(AttentionKernel.Auto, float32Copies: false);
        var reference = Pass(AttentionKernel.Explicit, float32Copies: true);

        Assert.Equal(ScalarType.BFloat16, auto.Output.dtype);
        Assert.True(auto.Output.allclose(reference.Output, rtol: 0, atol: 0), "output");
        for (var i = 0; i < auto.Grads.Length; i++)
            Assert.True(auto.Grads[i].allclose(reference.Grads[i], rtol: 0, atol: 0), $"gradient of input {i}");
    }

    /// <summary>Through a whole ViT (every block, the class token, LayerNorms) the two kernels give the same tokens.</summary>
    [Fact]
    public void WholeVitGivesTheSameTokensWithEitherKernel()
    {
        torch.random.manual_seed(3);
        var images = randn(2, 3, 16, 16);
        using var vit = new VisionTransformer(VitTestModels.Tiny, seed: 5);
        using var noGrad = no_grad();
        using var fused = vit.ForwardFeatures(images);
        vit.UseAttentionKernel(AttentionKernel.Explicit);
        using var reference = vit.ForwardFeatures(images);
        AssertClose(reference.Tokens, fused.Tokens, "tokens");
    }

    [Fact]
    public void PrefixesThatNeedTheirLogitsAreTheOnesKeptOffTheFusedKernel()
    {
        var keys = randn(1, 2, 3, 4);
        var values = randn(1, 2, 3, 4);
        Assert.False(AttentionPrefix.FromKeysAndValues(keys, values).NeedsExplicitLogits);
        Assert.True(new AttentionPrefix { Logits = randn(1, 2, 1, 3), Values = values }.NeedsExplicitLogits);
        Assert.True(new AttentionPrefix { Keys = keys, Values = values, LogitTransform = s => s }.NeedsExplicitLogits);
        Assert.True(new AttentionPrefix { Keys = keys, Values = values, ObserveLogits = _ => { } }.NeedsExplicitLogits);
    }

    /// <summary>SMoPE's aggregated expert logits and NoRGa's gated prefix logits exist only on the explicit path: with
    /// the default kernel their attention is bit for bit the explicit one. HiDe-Prompt's plain prefix takes the fused kernel.</summary>
    [Fact]
    public void SmopeAndNorgaTakeTheExplicitPathAndHidePromptTheFusedKernel()
    {
        const int headDim = 8;
        torch.random.manual_seed(13);
        using var smope = new SparsePromptExperts([0, 2], Heads, headDim, 6) { Routing = new ExpertRouting { TopK = 2, AggregatedLogits = true } };
        using var norga = new TaskPrefixPrompts([0, 1], 2, 4, Heads, headDim, new NonLinearResidualGate(2, GateActivation.Tanh));
        using var hide = new TaskPrefixPrompts([0, 1], 2, 4, Heads, headDim);
        using (no_grad())
        {
            norga.Gate!.Scales.fill_(1);
            hide.Prompts.copy_(norga.Prompts);
        }
        norga.UseTask(1);
        hide.UseTask(1);
        var x = randn(2, 17, Heads * headDim);
        using var attention = new VitAttention(Heads * headDim, Heads);
        using var noGrad = no_grad();
        Tensor Output(IAttentionPrefixProvider prefixes, AttentionKernel kernel)
        {
            attention.Kernel = kernel;
            return attention.Forward(x, prefixes, 0);
        }

        var queries = randn(2, Heads, 17, headDim);
        Assert.True(smope.ForBlock(0, queries)!.NeedsExplicitLogits);
        Assert.True(norga.ForBlock(0, queries)!.NeedsExplicitLogits);
        Assert.False(hide.ForBlock(0, queries)!.NeedsExplicitLogits);

        foreach (var provider in new IAttentionPrefixProvider[] { smope, norga })
            Assert.True(Output(provider, AttentionKernel.Auto).allclose(Output(provider, AttentionKernel.Explicit), rtol: 0, atol: 0), "logit prefixes must take the explicit path");
        // The gate is applied (the fused kernel cannot apply it): NoRGa's output differs from HiDe's plain prefix.
        var gateEffect = (Output(norga, AttentionKernel.Auto) - Output(hide, AttentionKernel.Auto)).abs().max().item<float>();
        Assert.True(gateEffect > 1e-2, $"the gate changed the output by {gateEffect:E2} only");
    }
}
