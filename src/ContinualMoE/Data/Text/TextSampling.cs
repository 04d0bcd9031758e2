namespace ContinualMoE.Data.Text;

/// <summary>The seeded draws the loaders make: a per-label cap, a total cap, and the split of one file.</summary>
internal static class TextSampling
{
    /// <summary>At most <paramref name="perClass"/> examples of each output label (seeded draw, file order kept), then at
    /// most <paramref name="limit"/> examples in all (seeded draw, file order kept).</summary>
    public static IReadOnlyList<TextExample> Cap(IReadOnlyList<TextExample> examples, int? perClass, int? limit, int seed, string salt)
    {
        IReadOnlyList<TextExample> kept = examples;
        if (perClass is { } k)
        {
            var chosen = new HashSet<int>();
            foreach (var group in Enumerable.Range(0, examples.Count).GroupBy(i => examples[i].Output, StringComparer.Ordinal))
                chosen.UnionWith(Draw(group.ToArray(), k, Seeds.Combine(seed, StableHash(salt), StableHash(group.Key))));
            kept = Enumerable.Range(0, examples.Count).Where(chosen.Contains).Select(i => examples[i]).ToList();
        }
        if (limit is { } n && kept.Count > n)
        {
            var chosen = Draw(Enumerable.Range(0, kept.Count).ToArray(), n, Seeds.Combine(seed, StableHash(salt), 1));
            var all = kept;
            kept = Enumerable.Range(0, all.Count).Where(chosen.Contains).Select(i => all[i]).ToList();
        }
        return kept;
    }

    /// <summary>Splits one task's examples into (train, test) with a seeded shuffle; at least one example on each side.</summary>
    public static (List<TextExample> Train, List<TextExample> Test) Split(IReadOnlyList<TextExample> examples, double testFraction, int seed, string salt)
    {
        var order = Enumerable.Range(0, examples.Count).ToArray();
        Seeds.Shuffle(new Random(Seeds.Combine(seed, StableHash(salt), 2)), order);
        var testCount = Math.Clamp((int)Math.Round(examples.Count * testFraction), 1, examples.Count - 1);
        var test = order.Take(testCount).Order().Select(i => examples[i]).ToList();
        var train = order.Skip(testCount).Order().Select(i => examples[i]).ToList();
        return (train, test);
    }

    private static HashSet<int> Draw(int[] indices, int count, int seed)
    {
        if (indices.Length <= count) return [.. indices];
        Seeds.Shuffle(new Random(seed), indices);
        return [.. indices.Take(count)];
    }

    /// <summary>FNV-1a of the text: string.GetHashCode is randomised per process.</summary>
    public static int StableHash(string text)
    {
        var hash = 2166136261u;
        foreach (var ch in text) hash = (hash ^ ch) * 16777619u;
        return (int)hash;
    }

    /// <summary>A seeded reservoir (Vitter's algorithm R) for files too large to hold (Amazon's CSV has 3 million rows):
    /// keeps at most <c>perLabel</c> examples of each output; without a per-label cap, at most <c>total</c> examples; with
    /// neither, every example. <see cref="Result"/> returns them in file order (a total cap on top of a per-label one is
    /// left to <see cref="Cap"/>).</summary>
    internal sealed class Reservoir(int? perLabel, int? total, int seed, string salt)
    {
        private readonly Dictionary<string, (List<(long Index, TextExample Example)> Kept, Random Random)> _byKey = new(StringComparer.Ordinal);
        private readonly Dictionary<string, long> _seen = new(StringComparer.Ordinal);
        private readonly int? _capacity = perLabel ?? total;
        private long _index;

        public void Add(TextExample example)
        {
            var index = _index++;
            var key = perLabel != null ? example.Output : "";
            if (!_byKey.TryGetValue(key, out var state))
                _byKey[key] = state = ([], new Random(Seeds.Combine(seed, StableHash(salt), StableHash(key))));
            var seen = _seen[key] = _seen.GetValueOrDefault(key) + 1;
            if (_capacity is not { } k || state.Kept.Count < k) state.Kept.Add((index, example));
            else if (state.Random.NextInt64(seen) is var j && j < k) state.Kept[(int)j] = (index, example);
        }

        public List<TextExample> Result() =>
            _byKey.Values.SelectMany(s => s.Kept).OrderBy(p => p.Index).Select(p => p.Example).ToList();
    }
}
