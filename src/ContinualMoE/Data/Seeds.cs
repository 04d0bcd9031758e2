namespace ContinualMoE.Data;

/// <summary>
/// Deterministic seed derivation. <see cref="HashCode"/> is randomised per process, so it cannot be used to make
/// results reproducible across runs; this mixes the parts with SplitMix64 instead.
/// </summary>
public static class Seeds
{
    public static int Combine(params int[] parts)
    {
        ulong state = 0x9E3779B97F4A7C15UL;
        foreach (var part in parts) state = Mix(state ^ (uint)part);
        return (int)(state ^ (state >> 32));
    }

    /// <summary>
    /// Fisher–Yates shuffle spelled out (i from n-1 down to 1, swap with <c>random.Next(i + 1)</c>) rather than
    /// <see cref="Random.Shuffle{T}(T[])"/>, whose algorithm the runtime does not promise to keep: class orders and
    /// splits must stay the same across .NET versions.
    /// </summary>
    public static void Shuffle<T>(Random random, T[] items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
