using ContinualMoE.Backbones.Language;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// The rotary embedding computes transformers' form, x cos + rotate_half(x) sin with rotate_half(x) = [-x2, x1], to the
/// bit, forward and backward, in float32 and bf16, for positions counted from a cache and for per-row positions, on the
/// transposed views of q and k that the LLaMA attention passes.
/// </summary>
public class RotaryEmbeddingTests
{
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.equal(b).all().item<bool>();

    private static Tensor RotateHalfForm(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        return x * cos + torch.cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], dim: -1) * sin;
    }

    /// <summary>cos and sin as transformers builds them: angles repeated over both halves, then cos and sin, cast to the model's dtype.</summary>
    private static (Tensor Cos, Tensor Sin) TransformersAngles(Tensor positions, double theta, int headDim, ScalarType dtype)
    {
        var inverse = 1.0f / torch.pow(torch.tensor((float)theta), torch.arange(0, headDim, 2, dtype: ScalarType.Float32) / headDim);
        var angles = positions.to(ScalarType.Float32).unsqueeze(-1) * inverse;
        var both = torch.cat([angles, angles], dim: -1);
        return (both.cos().to(dtype), both.sin().to(dtype));
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void ApplyEqualsTheRotateHalfFormToTheBit(ScalarType dtype, bool perRowPositions)
    {
        const int batch = 3, tokens = 7, heads = 2, headDim = 8;
        const long past = 5;
        var rotary = new RotaryEmbedding(headDim, new RopeSettings(10000));
        manual_seed(3);
        // As LlamaAttention passes q: the projection [B, T, H, d] viewed as [B, H, T, d].
        var projection = randn(batch, tokens, heads, headDim).to(dtype).requires_grad_();
        var x = projection.transpose(1, 2);
        var positions = perRowPositions
            ? torch.tensor(new long[] { 0, 0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 }).reshape(batch, tokens)
            : torch.arange(past, past + tokens, dtype: ScalarType.Int64);
        var (cos, signedSin) = perRowPositions ? rotary.Angles(positions, dtype) : rotary.Angles(past, tokens, dtype);
        var (expectedCos, sin) = TransformersAngles(positions, 10000, headDim, dtype);
        if (perRowPositions) (expectedCos, sin) = (expectedCos.unsqueeze(1), sin.unsqueeze(1));
        Assert.True(Same(expectedCos, cos), "cos");

        var upstream = randn(batch, heads, tokens, headDim).to(dtype);
        var expected = RotateHalfForm(x, expectedCos, sin);
        var expectedGrad = autograd.grad([expected], [projection], [upstream])[0];
        var actual = RotaryEmbedding.Apply(x, cos, signedSin);
        var actualGrad = autograd.grad([actual], [projection], [upstream])[0];

        Assert.Equal(dtype, actual.dtype);
        Assert.True(Same(expected, actual), "rotated values");
        Assert.True(Same(expectedGrad, actualGrad), "gradient");
    }
}
