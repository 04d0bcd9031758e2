using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// The <c>precision</c> run setting (issue 16 §1): the number format of the frozen backbone's weights and activations.
/// fp32 (default); bf16 (CPUs with AVX-512 BF16 or AMX run its matmuls about twice as fast); fp16 only on CUDA, where it
/// has kernels. Whatever the setting, everything a method trains or keeps (prompts, experts, gates, heads, statistics,
/// losses) stays fp32: the backbone casts at its boundaries (<see cref="PrecisionBoundary"/>).
/// </summary>
public static class ComputePrecision
{
    public const string Fp32 = "fp32";
    public const string Bf16 = "bf16";
    public const string Fp16 = "fp16";
    /// <summary>Per method: bf16 where the method is declared bf16-safe and the CPU has native bf16, else fp32
    /// (<see cref="Experiments.PrecisionPolicy"/>). A run records what it resolved to.</summary>
    public const string Auto = "auto";

    /// <summary>Whether a precision setting says auto (any case and spacing, as <see cref="Parse"/> reads names).</summary>
    public static bool IsAuto(string precision) => precision.Trim().ToLowerInvariant() == Auto;

    /// <summary>The backbone's number format for <paramref name="precision"/> on <paramref name="device"/>.</summary>
    public static ScalarType Parse(string precision, Device device) => precision.Trim().ToLowerInvariant() switch
    {
        Fp32 => ScalarType.Float32,
        Bf16 => ScalarType.BFloat16,
        Fp16 when device.type == DeviceType.CUDA => ScalarType.Float16,
        Auto => throw new ContinualMoEException("precision auto must be resolved per method before the backbone is built (Experiments.PrecisionPolicy.Resolve)"),
        Fp16 => throw new ContinualMoEException($"precision fp16 needs a CUDA device (device is {device.type.ToString().ToLowerInvariant()}): CPU kernels for fp16 are slow; use bf16 on a CPU"),
        _ => throw new ContinualMoEException($"unknown precision '{precision}': use fp32, bf16, auto or fp16 (CUDA only)"),
    };

    /// <summary>bf16/fp16 tensors on the CPU: there libtorch 2.10's fused scaled_dot_product_attention loses to attention
    /// written out in float32, so both backbones write it out (<see cref="VitAttention"/>, <see cref="Language.CausalAttention"/>;
    /// measured at each call site).</summary>
    internal static bool FusedAttentionIsSlower(Tensor t) =>
        t.device_type == DeviceType.CPU && t.dtype is ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>The setting's name of a number format.</summary>
    public static string Name(ScalarType type) => type switch
    {
        ScalarType.Float32 => Fp32,
        ScalarType.BFloat16 => Bf16,
        ScalarType.Float16 => Fp16,
        _ => type.ToString(),
    };
}
