using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// Rotary position embedding (Su et al. 2021, RoFormer) in the "rotate half" layout of transformers' LLaMA:
/// x cos(p w) + rotate_half(x) sin(p w), with w_i = theta^(-2i/d) repeated over both halves. Scaling follows
/// transformers' rope init functions: "linear" divides positions by the factor; "llama3" divides long wavelengths by
/// the factor, keeps short ones and blends in between.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] inverseFrequencies;
    private readonly double positionScale;

    public RotaryEmbedding(int headDim, RopeSettings settings)
    {
        var half = headDim / 2;
        var inverse = new double[half];
        // float32 like transformers: theta^(arange(0, d, 2) / d) is computed in single precision there.
        for (var i = 0; i < half; i++) inverse[i] = 1.0f / MathF.Pow((float)settings.Theta, (float)(2 * i) / headDim);
        positionScale = 1;
        if (settings.ScalingType == "linear") positionScale = 1 / settings.Factor;
        else if (settings.ScalingType == "llama3") Llama3Scale(inverse, settings);
        inverseFrequencies = inverse.Select(f => (float)f).ToArray();
    }

    private static void Llama3Scale(double[] inverse, RopeSettings s)
    {
        var lowFrequencyWavelength = s.OriginalMaxPositions / s.LowFrequencyFactor;
        var highFrequencyWavelength = s.OriginalMaxPositions / s.HighFrequencyFactor;
        for (var i = 0; i < inverse.Length; i++)
        {
            var wavelength = 2 * Math.PI / inverse[i];
            if (wavelength > lowFrequencyWavelength) inverse[i] /= s.Factor;
            else if (wavelength >= highFrequencyWavelength)
            {
                var smooth = (s.OriginalMaxPositions / wavelength - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
                inverse[i] = (1 - smooth) * inverse[i] / s.Factor + smooth * inverse[i];
            }
        }
    }

    /// <summary>cos and signed sin [T, d] (<see cref="Apply"/>) for positions past .. past+T-1, computed in float32 and cast
    /// to <paramref name="dtype"/> (the model's, as transformers casts them once per forward).</summary>
    public (Tensor Cos, Tensor SignedSin) Angles(long past, long tokens, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var positions = Scalars.Arange(past, past + tokens, dtype: ScalarType.Float32);
        if (positionScale != 1) positions = positions.mul(Scalars.Of(positionScale));
        return CosAndSignedSin(torch.outer(positions, torch.tensor(inverseFrequencies)), dtype);
    }

    /// <summary>cos and signed sin [B, 1, T, d] for per-row positions [B, T] (left-padded batches, packed label options),
    /// computed in float32 and cast to <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor SignedSin) Angles(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var scaled = positions.to(ScalarType.Float32);
        if (positionScale != 1) scaled = scaled.mul(Scalars.Of(positionScale));
        var (cos, signedSin) = CosAndSignedSin(scaled.unsqueeze(-1).mul(torch.tensor(inverseFrequencies)), dtype);  // angles [B, T, d/2]
        return (cos.unsqueeze(1).MoveToOuterDisposeScope(), signedSin.unsqueeze(1).MoveToOuterDisposeScope());
    }

    /// <summary>[cos a, cos a] and [-sin a, sin a] over the last dimension, in <paramref name="dtype"/>.</summary>
    private static (Tensor Cos, Tensor SignedSin) CosAndSignedSin(Tensor angles, ScalarType dtype)
    {
        var cos = angles.cos();
        var sin = angles.sin();
        return (torch.cat([cos, cos], dim: -1).to(dtype).MoveToOuterDisposeScope(), torch.cat([sin.neg(), sin], dim: -1).to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// x cos + rotate_half(x) sin for x [B, H, T, d], with cos and the signed sin [T, d] or [B, 1, T, d] in x's dtype
    /// (<see cref="Angles(long, long, ScalarType)"/>). rotate_half(x) sin = [-x2, x1] [sin1, sin2] equals roll(x, d/2)
    /// [-sin1, sin2] to the bit (a sign is exact), so one roll stands for two narrows, a negation and a concatenation:
    /// forward and backward of the bf16 LLaMA's rotary embedding took about 30 % less time (q of 8 x 4 heads x 64 tokens x 24).
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = NewDisposeScope();
        return (x * cos).Plus(x.roll(x.shape[^1] / 2, -1) * signedSin).MoveToOuterDisposeScope();
    }
}
