using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ContinualMoE.Backbones.Language;

/// <summary>A learned byte-level BPE vocabulary in GPT-2's form: token strings over GPT-2's byte-to-character
/// alphabet with their ids, the merges in rank order, and the end-of-text token (the last id).</summary>
public sealed record ByteLevelBpeVocabulary(IReadOnlyDictionary<string, int> Vocabulary, IReadOnlyList<(string Left, string Right)> Merges, string EndOfText)
{
    public int Size => Vocabulary.Count;
    public int EndOfTextId => Vocabulary[EndOfText];

    /// <summary>Writes GPT-2's tokenizer files: vocab.json and merges.txt (read by <see cref="LanguageModelTokenizer"/>
    /// and by transformers' GPT2Tokenizer), atomically.</summary>
    public void WriteGpt2Files(string folder)
    {
        var ordered = Vocabulary.OrderBy(p => p.Value).ToDictionary(p => p.Key, p => p.Value);
        AtomicFile.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(ordered) + "\n");
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var (left, right) in Merges) merges.Append(left).Append(' ').Append(right).Append('\n');
        AtomicFile.WriteAllText(Path.Combine(folder, "merges.txt"), merges.ToString());
    }
}

/// <summary>
/// Learns byte-level BPE merges (Sennrich et al. 2016; GPT-2's byte-level variant, Radford et al. 2019) from a corpus.
/// Hand-written because Microsoft.ML.Tokenizers, which the project uses to <em>apply</em> BPE, cannot train one; the
/// result is applied by that library, never by this class. The recipe is the textbook one: split text with GPT-2's
/// pre-tokenization regex, write each piece's UTF-8 bytes in GPT-2's byte alphabet, then repeatedly merge the most
/// frequent adjacent pair (ties: the pair whose merged string sorts first, ordinally, so the result is deterministic).
/// </summary>
public static class ByteLevelBpeTrainer
{
    public const string EndOfText = "<|endoftext|>";

    /// <summary>Learns <paramref name="merges"/> merges; the vocabulary is the 256 bytes, the merged tokens in order,
    /// then <see cref="EndOfText"/>.</summary>
    public static ByteLevelBpeVocabulary Train(IEnumerable<string> documents, int merges, CancellationToken cancellation = default)
    {
        if (merges < 0) throw new ContinualMoEException($"BPE merges must be >= 0, got {merges}");
        var alphabet = ByteAlphabet();
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var symbols = new List<string>();
        foreach (var c in alphabet) { vocabulary[c.ToString()] = symbols.Count; symbols.Add(c.ToString()); }

        // Unique pre-tokenized pieces with their counts, as symbol-id sequences.
        var pattern = new Regex(LanguageModelTokenizer.Gpt2Pattern, RegexOptions.Compiled);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var document in documents)
            foreach (Match piece in pattern.Matches(document))
                counts[piece.Value] = counts.GetValueOrDefault(piece.Value) + 1;
        var words = counts.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => (Symbols: Encoding.UTF8.GetBytes(p.Key).Select(b => (int)b).ToList(), Count: p.Value)).ToList();

        var pairCounts = new Dictionary<(int, int), long>();
        void CountPairs(List<int> word, long count, long sign)
        {
            for (var i = 0; i + 1 < word.Count; i++)
            {
                var pair = (word[i], word[i + 1]);
                var updated = pairCounts.GetValueOrDefault(pair) + sign * count;
                if (updated == 0) pairCounts.Remove(pair);
                else pairCounts[pair] = updated;
            }
        }
        foreach (var (word, count) in words) CountPairs(word, count, +1);

        var learned = new List<(string, string)>();
        for (var m = 0; m < merges && pairCounts.Count > 0; m++)
        {
            cancellation.ThrowIfCancellationRequested();
            var best = default((int Left, int Right));
            long bestCount = -1;
            string? bestText = null;
            foreach (var (pair, count) in pairCounts)
            {
                if (count < bestCount) continue;
                var text = symbols[pair.Item1] + symbols[pair.Item2];
                if (count > bestCount || string.CompareOrdinal(text, bestText) < 0) (best, bestCount, bestText) = (pair, count, text);
            }
            if (bestCount < 2) break;                      // a pair seen once teaches nothing
            var merged = symbols.Count;
            symbols.Add(bestText!);
            vocabulary[bestText!] = merged;
            learned.Add((symbols[best.Left], symbols[best.Right]));
            foreach (var (word, count) in words)
            {
                if (!Contains(word, best.Left, best.Right)) continue;
                CountPairs(word, count, -1);
                for (var i = 0; i + 1 < word.Count; i++)
                    if (word[i] == best.Left && word[i + 1] == best.Right) { word[i] = merged; word.RemoveAt(i + 1); }
                CountPairs(word, count, +1);
            }
        }
        vocabulary[EndOfText] = symbols.Count;
        return new ByteLevelBpeVocabulary(vocabulary, learned, EndOfText);
    }

    private static bool Contains(List<int> word, int left, int right)
    {
        for (var i = 0; i + 1 < word.Count; i++)
            if (word[i] == left && word[i + 1] == right) return true;
        return false;
    }

    /// <summary>GPT-2's reversible byte-to-character map (its bytes_to_unicode): printable Latin-1 bytes stand for
    /// themselves, the other 68 bytes for characters from U+0100 on, so that every token is a visible string.
    /// Index = byte value.</summary>
    public static char[] ByteAlphabet()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }
}
