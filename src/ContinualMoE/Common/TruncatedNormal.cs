using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE;

/// <summary>
/// PyTorch's <c>torch.nn.init.trunc_normal_</c> (the inverse-CDF method timm's init uses): uniform draws between the
/// normal CDF at the cut-offs, mapped through erfinv, scaled and shifted, clamped to [a, b]. The cut-offs are absolute
/// values, as in PyTorch (timm's std 0.02 with a = -2, b = 2 is effectively untruncated).
/// TorchSharp 0.107's <c>nn.init.trunc_normal_</c> must not be used: its native <c>THSInit_trunc_normal_</c> multiplies
/// by the mean and adds the std, so it fills every element with the std (0.02) and leaves NaN where a uniform draw
/// hits -1 (erfinv gives -inf, times a zero mean); docs/known-issues.md.
/// </summary>
public static class TruncatedNormal
{
    /// <summary>Fills <paramref name="tensor"/> in place (no autograd) and returns it.</summary>
    public static Tensor Fill_(Tensor tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0)
    {
        if (!(std > 0) || !(a < b))
            throw new ContinualMoEException($"truncated normal needs std > 0 and a < b, got std {std}, a {a}, b {b}");
        using var noGrad = no_grad();
        var low = NormalCdf((a - mean) / std);
        var high = NormalCdf((b - mean) / std);
        tensor.uniform_(2 * low - 1, 2 * high - 1);
        tensor.erfinv_();
        tensor.mul_(Scalars.Of(std * Math.Sqrt(2.0)));
        tensor.add_(Scalars.Of(mean));
        tensor.clamp_(Scalars.Of(a), Scalars.Of(b));
        return tensor;
    }

    /// <summary>The standard normal CDF, through libtorch's erf in double precision (.NET has no Math.Erf).</summary>
    private static double NormalCdf(double x)
    {
        using var value = torch.tensor(x / Math.Sqrt(2.0), ScalarType.Float64);
        using var erf = value.erf();
        return (1.0 + erf.item<double>()) / 2.0;
    }
}
