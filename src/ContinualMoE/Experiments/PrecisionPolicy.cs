using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using static TorchSharp.torch;

namespace ContinualMoE.Experiments;

/// <summary>
/// Resolves <c>precision: auto</c> (issue 16 §1): bf16 when the method is declared bf16-safe by measurement
/// (<see cref="ContinualMethodAttribute.Bf16Safe"/>) and the device is a CPU with native bf16 matmuls
/// (<see cref="CpuFeatures.HasNativeBf16"/>), fp32 otherwise (CUDA included: nothing was measured there). Runs record the
/// resolved value in their config, so a run is reproducible from its record on any machine.
/// </summary>
public static class PrecisionPolicy
{
    /// <summary>The config with its precision resolved (unchanged unless it says auto).</summary>
    public static RunConfig Resolve(RunConfig config) =>
        ComputePrecision.IsAuto(config.Precision)
            ? config with { Precision = Resolve(config.Method, ComputeDevice.Parse(config.Device), CpuFeatures.HasNativeBf16) }
            : config;

    /// <summary>What auto means for <paramref name="method"/> on <paramref name="device"/>.</summary>
    public static string Resolve(string method, Device device, bool cpuHasNativeBf16) =>
        Resolve(MethodRegistry.IsBf16Safe(method), device, cpuHasNativeBf16);

    /// <summary>What auto means for a method that is (or is not) declared bf16-safe.</summary>
    public static string Resolve(bool methodIsBf16Safe, Device device, bool cpuHasNativeBf16) =>
        device.type == TorchSharp.DeviceType.CPU && cpuHasNativeBf16 && methodIsBf16Safe
            ? ComputePrecision.Bf16
            : ComputePrecision.Fp32;
}

/// <summary>What the CPU offers for low-precision matmuls.</summary>
public static class CpuFeatures
{
    /// <summary>AVX-512 BF16 or AMX-BF16 (oneDNN's native bf16 kernels; without them bf16 is emulated and slower than
    /// fp32). Read from /proc/cpuinfo's flags (Linux); false elsewhere, so auto stays fp32 there.</summary>
    public static bool HasNativeBf16 => nativeBf16.Value;

    private static readonly Lazy<bool> nativeBf16 = new(() =>
    {
        try
        {
            return File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo")
                .Where(line => line.StartsWith("flags", StringComparison.Ordinal))
                .Take(1)
                .Any(line => line.Split(' ', ':', '\t').Any(flag => flag is "avx512_bf16" or "amx_bf16"));
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    });
}
