using ContinualMoE.Data;
using System.Globalization;

namespace ContinualMoE.Scenarios;

/// <summary>
/// Class orders for class-incremental scenarios: which original class ids come first.
/// A random order is a Fisher–Yates shuffle of 0..n-1 with <c>new Random(seed)</c> (i from n-1 down to 1, swap with
/// <c>Next(i + 1)</c>; see <see cref="Seeds.Shuffle{T}"/>). The literature (iCaRL's code, PyCIL/PILOT) commonly uses seed 1993, but
/// shuffles with numpy's generator: the same seed gives a different order here, so to reproduce a paper's exact order, write it to a file
/// and use <see cref="ReadFile"/>.
/// </summary>
public static class ClassOrder
{
    /// <summary>The seed the continual-learning literature usually shuffles classes with.</summary>
    public const int PaperSeed = 1993;

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
