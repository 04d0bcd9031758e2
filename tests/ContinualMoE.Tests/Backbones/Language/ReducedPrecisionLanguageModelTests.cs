using ContinualMoE.Backbones.Language;
using ContinualMoE.LowRank;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// bf16 language models on the CPU: attention written out in float32 computes what libtorch's fused kernel computes on
/// float32 copies (the earlier bf16 path), with every mask the decoders use, forward and backward; float32 attention,
/// written out while gradients are recorded and fused without them, computes what the fused kernel does, also with fewer
/// key/value heads than query heads (grouped-query attention, which the written-out path computes without repeating them); and LoRA experts
/// stay float32 on a bf16 model (the model casts at its boundary), with the fp32 model's loss and gradients within
/// bf16 rounding.
/// </summary>
public class ReducedPrecisionLanguageModelTests
{
    /// <summary>The earlier bf16 path: the fused kernel on float32 copies, cast back, with each key/value head repeated for
    /// the query heads it serves (grouped-query attention).</summary>
    private static Tensor FusedOnFloat32(Tensor q, Tensor k, Tensor v, Tensor? allowed, bool causal)
    {
        var groups = q.shape[1] / k.shape[1];
        Tensor Float32PerQueryHead(Tensor t) => t.to(ScalarType.Float32).repeat_interleave(groups, dim: 1);
        return nn.functional.scaled_dot_product_attention(q.to(ScalarType.Float32), Float32PerQueryHead(k), Float32PerQueryHead(v), allowed, 0.0, causal)
            .to(q.dtype);
    }

    private const string Grouped = ", grouped query heads";

    public static TheoryData<string> Masks => new()
    {
        "causal", "one new token", "cached then causal", "padded rows",
        "causal" + Grouped, "one new token" + Grouped, "cached then causal" + Grouped, "padded rows" + Grouped,
    };

    [Theory]
    [MemberData(nameof(Masks))]
    public void WrittenOutBf16AttentionEqualsTheFusedKernelOnFloat32Copies(string mask)
    {
        var (q, k, v, allowed, causal, upstream) = AttentionCase(mask, ScalarType.BFloat16);
        var expected = FusedOnFloat32(q, k, v, allowed, causal);
        var expectedGrads = autograd.grad([expected], [q, k, v], [upstream]);
        var actual = CausalAttention.ScaledDotProduct(q, k, v, allowed, causal);
        var actualGrads = autograd.grad([actual], [q, k, v], [upstream]);

        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        // Both compute in float32 and round once to bf16: they differ by at most one bf16 step (2^-8 relative) where the
        // float32 sums round differently, or by float32 rounding (a thousandth of the largest value) where sums cancel.
        AssertWithinOneBf16Step(expected, actual, "output");
        for (var i = 0; i < 3; i++) AssertWithinOneBf16Step(expectedGrads[i], actualGrads[i], $"gradient of {"qkv"[i]}");
    }

    [Theory]
    [MemberData(nameof(Masks))]
    public void Float32AttentionWithAndWithoutGradientsEqualsTheFusedKernel(string mask)
    {
        var (q, k, v, allowed, causal, upstream) = AttentionCase(mask, ScalarType.Float32);
        var expected = FusedOnFloat32(q, k, v, allowed, causal);
        var expectedGrads = autograd.grad([expected], [q, k, v], [upstream]);
        var training = CausalAttention.ScaledDotProduct(q, k, v, allowed, causal);      // written out: gradients are on
        var trainingGrads = autograd.grad([training], [q, k, v], [upstream]);
        Tensor inference;
        using (no_grad()) inference = CausalAttention.ScaledDotProduct(q, k, v, allowed, causal);

        AssertClose(expected, training, "output with gradients");
        AssertClose(expected, inference, "output without gradients");
        for (var i = 0; i < 3; i++) AssertClose(expectedGrads[i], trainingGrads[i], $"gradient of {"qkv"[i]}");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(ScalarType.Float32, actual.dtype);
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference <= 1e-5f * Math.Max(1f, expected.abs().max().item<float>()), $"{what}: largest difference {difference}");
        Assert.True(actual.abs().max().item<float>() > 0, $"{what} is all zeros");
    }

    private static (Tensor Q, Tensor K, Tensor V, Tensor? Allowed, bool Causal, Tensor Upstream) AttentionCase(string mask, ScalarType dtype)
    {
        var generator = new Generator(5);
        var queryHeadsPerKeyValueHead = mask.EndsWith(Grouped) ? 2 : 1;
        mask = mask.Replace(Grouped, "");
        long batch = 3, keyValueHeads = 2, heads = keyValueHeads * queryHeadsPerKeyValueHead, dim = 8;
        var (tokens, keys) = mask switch { "one new token" => (1L, 7L), "cached then causal" => (4L, 9L), _ => (6L, 6L) };
        Tensor? allowed = mask switch
        {
            "cached then causal" => Scalars.Arange(keys, dtype: ScalarType.Int64).unsqueeze(0)
                .le(Scalars.Arange(keys - tokens, keys, dtype: ScalarType.Int64).unsqueeze(1)),                 // bottom-right
            "padded rows" => tensor(new[] { true, true, true, true, true, true, false, false, true, true, true, true, false, true, true, true, true, true })
                .reshape(batch, 1, 1, keys).logical_and(ones(tokens, keys, dtype: ScalarType.Bool).tril()).logical_or(eye(tokens, dtype: ScalarType.Bool)),
            _ => null,
        };
        var causal = mask is "causal";
        Tensor Input(long inputHeads, long length) => randn([batch, inputHeads, length, dim], generator: generator).mul(2).to(dtype).requires_grad_(true);
        var (q, k, v) = (Input(heads, tokens), Input(keyValueHeads, keys), Input(keyValueHeads, keys));
        var upstream = randn([batch, heads, tokens, dim], generator: generator).to(dtype);
        return (q, k, v, allowed, causal, upstream);
    }

    private static void AssertWithinOneBf16Step(Tensor expected, Tensor actual, string what)
    {
        var e = expected.to(ScalarType.Float32);
        var a = actual.to(ScalarType.Float32);
        var excess = (e - a).abs() - e.abs().mul(1.0 / 128).clamp_min(1e-3 * e.abs().max().item<float>());
        Assert.True(excess.max().item<float>() <= 0, $"{what}: largest difference {(e - a).abs().max().item<float>()}");
        Assert.True(a.abs().max().item<float>() > 0, $"{what} is all zeros");
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    public void Fp32LoraOnABf16ModelTrainsWithTheFp32ModelsLossAndGradients(string folder)
    {
        var generator = new Generator(3);
        var (loss32, grads32) = LossAndGradients(LmFixtures.Load(folder), generator: new Generator(3));
        var bf16Model = LmFixtures.Load(folder, ScalarType.BFloat16);
        var (loss16, grads16) = LossAndGradients(bf16Model, generator: new Generator(3));

        Assert.Equal(ScalarType.Float32, grads16.dtype);   // the experts and their gradients stay float32
        Assert.True(Math.Abs(loss16 - loss32) < 0.02 * Math.Abs(loss32), $"{folder}: bf16 loss {loss16} vs fp32 {loss32}");
        var relative = (grads16 - grads32).norm().item<float>() / grads32.norm().item<float>();
        Assert.True(relative < 0.05, $"{folder}: gradients differ by {relative:P2} of their norm");
        Assert.True(grads32.norm().item<float>() > 0);
    }

    /// <summary>Causal-LM loss of random ids with LoRA on q and v (B random, so the delta matters) and the experts' gradients, concatenated.</summary>
    private static (double Loss, Tensor Gradients) LossAndGradients(DecoderLanguageModel model, Generator generator)
    {
        using var experts = LowRankExperts.Uniform(LowRankSites.Select(model, ["qv"], null, "test"), 1, 4, 8);
        experts.Activate(0);
        using (no_grad())
            foreach (var p in experts.TrainableParameters()) p.copy_(randn(p.shape, generator: generator).mul(0.3));
        var ids = randint(0, model.Config.VocabSize, [2, 12], dtype: ScalarType.Int64, generator: generator);
        using var output = model.Forward(ids.narrow(1, 0, 11), new LmForwardOptions { Adapters = experts });
        var loss = nn.functional.cross_entropy(output.Logits!.reshape(-1, model.Config.VocabSize), ids.narrow(1, 1, 11).reshape(-1));
        loss.backward();
        var gradients = cat(experts.TrainableParameters().Select(p => p.grad!.flatten()).ToArray(), 0);
        return (loss.item<float>(), gradients);
    }
}
