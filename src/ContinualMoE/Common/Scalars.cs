using System.Collections.Concurrent;
using TorchSharp;

namespace ContinualMoE;

/// <summary>
/// Long-lived TorchSharp scalars for constants used on hot paths. An implicit double-to-Scalar conversion makes a
/// temporary whose finalizer can run while libtorch still reads it (the managed object is dead once its handle has
/// been passed on); we saw this once as "Unknown scalar type" in a long run. A cached Scalar stays referenced.
/// </summary>
public static class Scalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Cache = new();

    public static Scalar Of(double value) => Cache.GetOrAdd(value, v => v.ToScalar());

    public static Scalar NegativeInfinity { get; } = Of(double.NegativeInfinity);
}
