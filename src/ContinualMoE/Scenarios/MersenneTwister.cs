namespace ContinualMoE.Scenarios;

/// <summary>
/// The 32-bit Mersenne Twister MT19937 (Matsumoto and Nishimura, ACM TOMACS 1998), written from the reference
/// algorithm mt19937ar.c: <see cref="FromSeed"/> is its <c>init_genrand</c>, <see cref="FromKey"/> its
/// <c>init_by_array</c>, <see cref="NextUInt32"/> its <c>genrand_int32</c>. numpy's legacy RandomState and CPython's
/// <c>random</c> module both draw from this generator; only their seeding and the way they turn words into integers
/// differ (see <see cref="ClassOrder"/>).
/// </summary>
public sealed class MersenneTwister
{
    private const int N = 624, M = 397;
    private const uint MatrixA = 0x9908b0df, UpperMask = 0x80000000, LowerMask = 0x7fffffff;
    private readonly uint[] state = new uint[N];
    private int index = N + 1;

    private MersenneTwister() { }

    /// <summary><c>init_genrand(s)</c>: Knuth's linear recurrence from one 32-bit word.</summary>
    public static MersenneTwister FromSeed(uint seed)
    {
        var mt = new MersenneTwister();
        mt.InitGenrand(seed);
        return mt;
    }

    /// <summary><c>init_by_array(key)</c>: <c>init_genrand(19650218)</c> mixed with every word of the key.</summary>
    public static MersenneTwister FromKey(IReadOnlyList<uint> key)
    {
        if (key.Count == 0) throw new ArgumentException("the key needs at least one word", nameof(key));
        var mt = new MersenneTwister();
        mt.InitGenrand(19650218u);
        var s = mt.state;
        int i = 1, j = 0;
        for (var k = Math.Max(N, key.Count); k > 0; k--)
        {
            s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++; j++;
            if (i >= N) { s[0] = s[N - 1]; i = 1; }
            if (j >= key.Count) j = 0;
        }
        for (var k = N - 1; k > 0; k--)
        {
            s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N) { s[0] = s[N - 1]; i = 1; }
        }
        s[0] = 0x80000000u; // the most significant bit is 1: a non-zero initial state
        return mt;
    }

    private void InitGenrand(uint seed)
    {
        state[0] = seed;
        for (var i = 1; i < N; i++) state[i] = 1812433253u * (state[i - 1] ^ (state[i - 1] >> 30)) + (uint)i;
        index = N;
    }

    /// <summary>The next 32-bit output (<c>genrand_int32</c>).</summary>
    public uint NextUInt32()
    {
        if (index >= N) Twist();
        var y = state[index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    private void Twist()
    {
        for (var k = 0; k < N; k++)
        {
            var y = (state[k] & UpperMask) | (state[(k + 1) % N] & LowerMask);
            state[k] = state[(k + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? MatrixA : 0u);
        }
        index = 0;
    }
}
