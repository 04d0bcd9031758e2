// Rule: per-batch code (training steps, prediction, losses, routing, end-of-task passes) makes no implicit Scalars;
// constructors and other run-once initialisation may.
using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE;

/// <summary>
/// Long-lived TorchSharp scalars for constants used on hot paths. An implicit double-to-Scalar conversion makes a
/// temporary whose finalizer can run while libtorch still reads it (the managed object is dead once its handle has
/// been passed on); we saw this once as "Unknown scalar type" in a long run. A cached Scalar stays referenced.
/// </summary>
public static class Scalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Cache = new();
    private static readonly ConcurrentDictionary<long, Scalar> IntegerCache = new();

    /// <summary>A cached floating-point Scalar.</summary>
    public static Scalar Of(double value) => Cache.GetOrAdd(value, v => v.ToScalar());

    /// <summary>A cached integral Scalar (for integer tensors and factories whose dtype follows the Scalar's type).</summary>
    public static Scalar Integer(long value) => IntegerCache.GetOrAdd(value, v => v.ToScalar());

    public static Scalar NegativeInfinity { get; } = Of(double.NegativeInfinity);

    /// <summary>The alpha TorchSharp's <c>add(x)</c> passes as a temporary <c>1</c> (an Int32 Scalar, as there).</summary>
    public static Scalar One { get; } = 1.ToScalar();

    /// <summary>0, 1, ..., stop - 1 without the temporary start and step Scalars of <c>torch.arange(stop)</c>.</summary>
    public static Tensor Arange(long stop, ScalarType? dtype = null, Device? device = null) =>
        arange(Integer(0), Integer(stop), Integer(1), dtype, device);

    /// <summary>start, ..., stop - 1 without temporary Scalars.</summary>
    public static Tensor Arange(long start, long stop, ScalarType? dtype = null, Device? device = null) =>
        arange(Integer(start), Integer(stop), Integer(1), dtype, device);
}

/// <summary>
/// Tensor additions without a temporary alpha Scalar: TorchSharp's <c>a + b</c> is <c>a.add(b, 1)</c> with a fresh
/// Scalar that a collection can finalize mid-call. Same kernel and alpha, so results are bit-identical.
/// (<c>a - b</c> is <c>sub(Tensor)</c>, which passes no Scalar, and is safe as it is.)
/// </summary>
public static class SafeArithmetic
{
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, Scalars.One);

    /// <summary>Tensor plus a (cached) Scalar: <c>add(Scalar)</c> also makes a temporary alpha.</summary>
    public static Tensor Plus(this Tensor a, Scalar b) => a.add(b, Scalars.One);

    /// <summary>In-place tensor addition: <c>add_(Tensor)</c> also makes a temporary alpha.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, Scalars.One);
}
