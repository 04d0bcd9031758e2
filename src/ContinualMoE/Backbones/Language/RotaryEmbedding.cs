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

    /// <summary>cos and sin [T, d] for positions past .. past+T-1, computed in float32 and cast to <paramref name="dtype"/>
    /// (the model's, as transformers casts them once per forward).</summary>
    public (Tensor Cos, Tensor Sin) Angles(long past, long tokens, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var positions = Scalars.Arange(past, past + tokens, dtype: ScalarType.Float32);
        if (positionScale != 1) positions = positions.mul(Scalars.Of(positionScale));
        var angles = torch.outer(positions, torch.tensor(inverseFrequencies));
        var both = torch.cat([angles, angles], dim: -1);
        return (both.cos().to(dtype).MoveToOuterDisposeScope(), both.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>cos and sin [B, 1, T, d] for per-row positions [B, T] (left-padded batches, packed label options), computed
    /// in float32 and cast to <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Angles(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var scaled = positions.to(ScalarType.Float32);
        if (positionScale != 1) scaled = scaled.mul(Scalars.Of(positionScale));
        var angles = scaled.unsqueeze(-1).mul(torch.tensor(inverseFrequencies));                       // [B, T, d/2]
        var both = torch.cat([angles, angles], dim: -1).unsqueeze(1);
        return (both.cos().to(dtype).MoveToOuterDisposeScope(), both.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x [B, H, T, d]; cos, sin [T, d] or [B, 1, T, d] in x's dtype (<see cref="Angles(long, long, ScalarType)"/>).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var rotated = torch.cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], dim: -1);
        return (x * cos).Plus(rotated * sin).MoveToOuterDisposeScope();
    }
}
