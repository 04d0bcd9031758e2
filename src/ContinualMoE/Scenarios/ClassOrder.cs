using ContinualMoE.Data;
using System.Globalization;

namespace ContinualMoE.Scenarios;

/// <summary>Which random generator draws a class order from the run seed (<c>class_order</c> in a run config).</summary>
public enum ClassOrderGenerator
{
    /// <summary>The project's own: Fisher–Yates with .NET's <c>new Random(seed)</c> (<see cref="ClassOrder.Random"/>).</summary>
    Project,

    /// <summary>numpy's legacy <c>np.random.seed(s); np.random.permutation(n)</c>: PyCIL, PILOT, the L2P/DualPrompt ports.</summary>
    Numpy,

    /// <summary>Python's <c>random.seed(s); random.shuffle(list(range(n)))</c>: the official SMoPE and HiDe-Prompt/NoRGa code.</summary>
    Python,
}

/// <summary>
/// Class orders for class-incremental scenarios: which original class ids come first.
/// The project's random order is a Fisher–Yates shuffle of 0..n-1 with <c>new Random(seed)</c> (i from n-1 down to 1,
/// swap with <c>Next(i + 1)</c>; see <see cref="Seeds.Shuffle{T}"/>). The literature's code shuffles with numpy's or
/// Python's Mersenne Twister instead, so that a seed gives the same task splits as there, <see cref="NumpyPermutation"/>
/// and <see cref="PythonShuffle"/> reimplement those two exactly (tests hold sequences produced by numpy and CPython).
/// An explicit order can also be read from a file (<see cref="ReadFile"/>).
/// </summary>
public static class ClassOrder
{
    /// <summary>The seed the continual-learning literature usually shuffles classes with (iCaRL, PyCIL: with numpy).</summary>
    public const int PaperSeed = 1993;

    public static ClassOrderGenerator ParseGenerator(string name) => name.Trim().ToLowerInvariant() switch
    {
        "project" => ClassOrderGenerator.Project,
        "numpy" => ClassOrderGenerator.Numpy,
        "python" => ClassOrderGenerator.Python,
        _ => throw new ContinualMoEException($"class_order must be project, numpy or python, got '{name}'"),
    };

    /// <summary>A random order of 0..classCount-1 drawn from <paramref name="seed"/> by <paramref name="generator"/>.</summary>
    public static int[] Generate(ClassOrderGenerator generator, int classCount, long seed) => generator switch
    {
        ClassOrderGenerator.Project => Random(classCount, checked((int)seed)),
        ClassOrderGenerator.Numpy => NumpyPermutation(classCount, seed),
        ClassOrderGenerator.Python => PythonShuffle(classCount, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(generator)),
    };

    /// <summary>
    /// numpy's legacy <c>np.random.seed(seed); np.random.permutation(n)</c>. RandomState.seed with an integer in
    /// [0, 2^32) is MT19937's <c>init_genrand(seed)</c> (mt19937_seed); permutation shuffles arange(n) in place with
    /// i from n-1 down to 1 and j = random_interval(i): draw 32-bit words, mask them to the smallest all-ones bit mask
    /// covering i, reject values above i.
    /// </summary>
    public static int[] NumpyPermutation(int n, long seed)
    {
        if (seed is < 0 or > uint.MaxValue) throw new ContinualMoEException($"numpy seeds must be in [0, 2^32), got {seed}");
        var mt = MersenneTwister.FromSeed((uint)seed);
        var order = Enumerable.Range(0, n).ToArray();
        for (var i = n - 1; i >= 1; i--)
        {
            var mask = (uint)i;
            mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16;
            uint j;
            do j = mt.NextUInt32() & mask; while (j > (uint)i);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>
    /// CPython's <c>random.seed(seed); random.shuffle(x)</c> on x = list(range(n)). random.seed with an int uses
    /// MT19937's <c>init_by_array</c> on the 32-bit words of |seed| (least significant first; [0] for 0); shuffle runs
    /// i from n-1 down to 1 and swaps x[i] with x[_randbelow(i + 1)], where _randbelow(m) draws k = m.bit_length()
    /// bits (the top k bits of one 32-bit word, getrandbits) until the value is below m.
    /// </summary>
    public static int[] PythonShuffle(int n, long seed)
    {
        var magnitude = (ulong)Math.Abs(seed);
        var key = magnitude >> 32 == 0 ? new[] { (uint)magnitude } : [(uint)magnitude, (uint)(magnitude >> 32)];
        var mt = MersenneTwister.FromKey(key);
        var order = Enumerable.Range(0, n).ToArray();
        for (var i = n - 1; i >= 1; i--)
        {
            var bound = (uint)(i + 1);
            var bits = 32 - System.Numerics.BitOperations.LeadingZeroCount(bound);
            uint j;
            do j = mt.NextUInt32() >> (32 - bits); while (j >= bound);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    public static int[] Random(int classCount, int seed)
    {
        var order = Enumerable.Range(0, classCount).ToArray();
        Seeds.Shuffle(new Random(seed), order);
        return order;
    }

    /// <summary>
    /// Reads an order file: integers separated by whitespace and/or commas; lines starting with '#' are comments.
    /// It must be a permutation of 0..classCount-1.
    /// </summary>
    public static int[] ReadFile(string path, int classCount)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "class order file not found");
        var values = new List<int>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.TrimStart().StartsWith('#')) continue;
            foreach (var token in line.Split([' ', '\t', ',', ';'], StringSplitOptions.RemoveEmptyEntries))
            {
                if (!int.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
                    throw ContinualMoEException.ForFile(path, $"line {lineNumber}: \"{token}\" is not an integer class id");
                values.Add(value);
            }
        }
        var problem = PermutationProblem(values, classCount);
        if (problem != null) throw ContinualMoEException.ForFile(path, problem);
        return values.ToArray();
    }

    /// <summary>Why <paramref name="order"/> is not a permutation of 0..classCount-1, or null if it is.</summary>
    public static string? PermutationProblem(IReadOnlyList<int> order, int classCount)
    {
        var seen = new bool[classCount];
        foreach (var id in order)
        {
            if (id < 0 || id >= classCount)
                return $"class id {id} is out of range: the dataset has classes 0..{classCount - 1}";
            if (seen[id]) return $"class id {id} appears more than once; the order must be a permutation of 0..{classCount - 1}";
            seen[id] = true;
        }
        if (order.Count != classCount)
        {
            var missing = Enumerable.Range(0, classCount).Where(c => !seen[c]).Take(5).ToArray();
            return $"lists {order.Count} classes but the dataset has {classCount}; missing e.g. {string.Join(", ", missing)}";
        }
        return null;
    }
}
