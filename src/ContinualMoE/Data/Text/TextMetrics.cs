using System.Text.RegularExpressions;

namespace ContinualMoE.Data.Text;

/// <summary>How a text task's generated answers are scored.</summary>
public enum TextMetric
{
    /// <summary>Exact string match (accuracy). O-LoRA's classification tasks and TRACE's C-STANCE, FOMC, NumGLUE-cm/ds.</summary>
    ExactMatch,
    /// <summary>TRACE's ScienceQA accuracy: the first character of answer and reference (the option letter) match.</summary>
    FirstCharacterMatch,
    /// <summary>ROUGE-L F1 of the <c>rouge</c> package TRACE uses (MeetingBank).</summary>
    RougeL,
    /// <summary>Character edit similarity after TRACE's literal-token restoration (Py150).</summary>
    EditSimilarity,
    /// <summary>SARI of the output against the source and the reference (TRACE's 20Minuten).</summary>
    Sari,
}

/// <summary>
/// The per-task metrics of the text benchmarks, each a mean over examples in [0, 1]. TRACE's aggregation is kept
/// (github.com/BeyonderXX/TRACE metrics.py): an example whose prediction or reference is empty scores 0 but still counts
/// in the denominator. Per-task metric choice follows TRACE's evaluations/eval_*.py and the paper's Table 1.
/// </summary>
public static class TextMetrics
{
    /// <summary>The metric a task is reported with: TRACE's per task, exact match for everything else.</summary>
    public static TextMetric MetricFor(string taskName) => TraceBenchmark.Metrics.TryGetValue(taskName, out var metric) ? metric : TextMetric.ExactMatch;

    /// <summary>Exact match after trimming surrounding white space (TRACE's and O-LoRA's exact-match accuracy).</summary>
    public static bool ExactMatch(string answer, string reference) =>
        string.Equals(answer.Trim(), reference.Trim(), StringComparison.Ordinal);

    /// <summary>How a run scores each generated answer of a task (the accuracy matrix averages the scores): 1/0 for the
    /// accuracies (exact match and ScienceQA's first letter, after trimming), the per-sample graded figure for ROUGE-L,
    /// edit similarity and SARI (<see cref="ScoreOne"/> of the trimmed answer, as <see cref="Score"/> averages it).</summary>
    public static TextAnswerMetric AnswerMetricFor(string taskName) => MetricFor(taskName) switch
    {
        TextMetric.ExactMatch => static (answer, reference, _) => ExactMatch(answer, reference) ? 1 : 0,
        TextMetric.FirstCharacterMatch => static (answer, reference, _) =>
            answer.Trim() is { Length: > 0 } a && reference.Trim() is { Length: > 0 } r && a[0] == r[0] ? 1 : 0,
        var graded => (answer, reference, source) => ScoreOne(graded, answer.Trim(), reference, source),
    };

    /// <summary>Mean score of <paramref name="predictions"/> against the tasks' reference outputs. SARI also reads the
    /// sources, which are the examples' inputs.</summary>
    public static double Score(TextMetric metric, IReadOnlyList<string> predictions, IReadOnlyList<TextExample> references)
    {
        if (predictions.Count != references.Count)
            throw new ArgumentException($"{predictions.Count} predictions for {references.Count} references");
        if (predictions.Count == 0) return 0;
        var total = 0.0;
        for (var i = 0; i < predictions.Count; i++) total += ScoreOne(metric, predictions[i], references[i].Output, references[i].Input);
        return total / predictions.Count;
    }

    /// <summary>One prediction's score in [0, 1] under <paramref name="metric"/>; 0 when the prediction or the reference is
    /// empty (TRACE's aggregation). <paramref name="source"/> is the example's input (SARI).</summary>
    public static double ScoreOne(TextMetric metric, string prediction, string reference, string source)
    {
        if (prediction.Length == 0 || reference.Length == 0) return 0;
        return metric switch
        {
            TextMetric.ExactMatch => prediction == reference ? 1 : 0,
            TextMetric.FirstCharacterMatch => prediction[0] == reference[0] ? 1 : 0,
            TextMetric.RougeL => RougeL(prediction, reference),
            TextMetric.EditSimilarity => EditSimilarity(RestorePy150Literals(prediction), RestorePy150Literals(reference)),
            TextMetric.Sari => Sari(source, prediction, [reference]),
            _ => throw new ArgumentOutOfRangeException(nameof(metric)),
        };
    }

    /// <summary>
    /// ROUGE-L as TRACE computes it (metrics.py score_rouge: <c>Rouge(metrics=["rouge-l"]).get_scores(target, prediction)</c>
    /// of the <c>rouge</c> 1.0.1 package, github.com/pltrdy/rouge rouge/rouge.py and rouge_score.py): both texts are cut
    /// into sentences at '.', the summary-level union LCS counts each word once ("exclusive" sets), recall and precision
    /// divide it by the numbers of distinct words, and F = 2PR / (P + R + 1e-8). The target plays the package's
    /// hypothesis and the prediction its reference, in that order, because LCS reconstruction breaks ties by order.
    /// </summary>
    public static double RougeL(string prediction, string reference)
    {
        var evaluated = RougeSentences(reference);   // TRACE passes the target as the hypothesis...
        var referenceSentences = RougeSentences(prediction);   // ...and the prediction as the reference
        if (evaluated.Count == 0 || referenceSentences.Count == 0) return 0;   // the package raises; TRACE would fail
        var m = referenceSentences.SelectMany(s => s.Split(' ')).Distinct(StringComparer.Ordinal).Count();
        var n = evaluated.SelectMany(s => s.Split(' ')).Distinct(StringComparer.Ordinal).Count();
        var union = new HashSet<string>(StringComparer.Ordinal);
        foreach (var referenceSentence in referenceSentences)
        {
            var x = referenceSentence.Split(' ');
            foreach (var evaluatedSentence in evaluated) union.UnionWith(ReconstructLcs(x, evaluatedSentence.Split(' ')));
        }
        double recall = (double)union.Count / m, precision = (double)union.Count / n;
        return 2.0 * (precision * recall / (precision + recall + 1e-8));
    }

    /// <summary>The package's sentence split: pieces between '.', non-empty, whitespace runs collapsed to one space.</summary>
    private static List<string> RougeSentences(string text) =>
        text.Split('.').Where(piece => piece.Length > 0)
            .Select(piece => string.Join(' ', piece.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))).ToList();

    /// <summary>One longest common subsequence of x and y, reconstructed from the end: a match is taken, else the
    /// step that keeps the longer prefix, preferring to shorten y on ties (rouge_score.py _recon_lcs).</summary>
    private static List<string> ReconstructLcs(string[] x, string[] y)
    {
        var table = new int[x.Length + 1, y.Length + 1];
        for (var i = 1; i <= x.Length; i++)
            for (var j = 1; j <= y.Length; j++)
                table[i, j] = x[i - 1] == y[j - 1] ? table[i - 1, j - 1] + 1 : Math.Max(table[i - 1, j], table[i, j - 1]);
        var result = new List<string>();
        for (int i = x.Length, j = y.Length; i > 0 && j > 0;)
        {
            if (x[i - 1] == y[j - 1]) { result.Add(x[i - 1]); i--; j--; }
            else if (table[i - 1, j] > table[i, j - 1]) i--;
            else j--;
        }
        return result;
    }

    /// <summary>
    /// TRACE's Py150 edit similarity: fuzzywuzzy's <c>fuzz.ratio</c> / 100, i.e. difflib's
    /// <c>SequenceMatcher(None, prediction, reference).ratio()</c> (2·matches / total length, matches found by recursive
    /// longest matching blocks, with difflib's "popular character" rule for references of 200+ characters) rounded to a
    /// whole percent. TRACE's requirements have no python-Levenshtein, so fuzzywuzzy takes this difflib path.
    /// </summary>
    public static double EditSimilarity(string prediction, string reference)
    {
        if (prediction == reference) return 1;
        if (prediction.Length == 0 || reference.Length == 0) return 0;
        var ratio = 2.0 * MatchingCharacters(prediction, reference) / (prediction.Length + reference.Length);
        return Math.Round(100 * ratio, MidpointRounding.ToEven) / 100; // Python's round(), as fuzzywuzzy's intr()
    }

    /// <summary>Sum of the sizes of difflib's matching blocks of a against b (b indexed, as SequenceMatcher does).</summary>
    private static int MatchingCharacters(string a, string b)
    {
        var positions = new Dictionary<char, List<int>>();
        for (var j = 0; j < b.Length; j++)
        {
            if (!positions.TryGetValue(b[j], out var list)) positions[b[j]] = list = [];
            list.Add(j);
        }
        if (b.Length >= 200) // difflib autojunk: characters more frequent than 1% (+1) of b are not indexed
        {
            var popular = b.Length / 100 + 1;
            foreach (var key in positions.Where(p => p.Value.Count > popular).Select(p => p.Key).ToList()) positions.Remove(key);
        }
        var matched = 0;
        var queue = new Stack<(int ALo, int AHi, int BLo, int BHi)>();
        queue.Push((0, a.Length, 0, b.Length));
        while (queue.Count > 0)
        {
            var (alo, ahi, blo, bhi) = queue.Pop();
            var (i, j, k) = LongestMatch(a, b, positions, alo, ahi, blo, bhi);
            if (k == 0) continue;
            matched += k;
            if (alo < i && blo < j) queue.Push((alo, i, blo, j));
            if (i + k < ahi && j + k < bhi) queue.Push((i + k, ahi, j + k, bhi));
        }
        return matched;
    }

    /// <summary>difflib's find_longest_match without a junk function: the longest block among indexed characters
    /// (earliest in a, then in b), then extended over equal neighbours, which lets popular characters join a block.</summary>
    private static (int I, int J, int Size) LongestMatch(string a, string b, Dictionary<char, List<int>> positions, int alo, int ahi, int blo, int bhi)
    {
        int besti = alo, bestj = blo, bestSize = 0;
        var lengths = new Dictionary<int, int>();
        for (var i = alo; i < ahi; i++)
        {
            var next = new Dictionary<int, int>();
            if (positions.TryGetValue(a[i], out var js))
                foreach (var j in js)
                {
                    if (j < blo) continue;
                    if (j >= bhi) break;
                    var k = next[j] = lengths.GetValueOrDefault(j - 1) + 1;
                    if (k > bestSize) (besti, bestj, bestSize) = (i - k + 1, j - k + 1, k);
                }
            lengths = next;
        }
        while (besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1]) { besti--; bestj--; bestSize++; }
        while (besti + bestSize < ahi && bestj + bestSize < bhi && a[besti + bestSize] == b[bestj + bestSize]) bestSize++;
        return (besti, bestj, bestSize);
    }

    private static readonly Regex Py150Literal = new(@"<(STR|NUM|CHAR)_LIT:(.*?)>", RegexOptions.Singleline | RegexOptions.CultureInvariant);

    /// <summary>TRACE's evaluations/eval_Py150.py postprocess: bare literal placeholders become "0" / "" and
    /// <c>&lt;STR_LIT:x&gt;</c>-style placeholders become their value x.</summary>
    public static string RestorePy150Literals(string code) =>
        Py150Literal.Replace(code.Replace("<NUM_LIT>", "0").Replace("<STR_LIT>", "").Replace("<CHAR_LIT>", ""), m => m.Groups[2].Value);

    /// <summary>
    /// SARI (Xu et al. 2016, "Optimizing statistical machine translation for text simplification"), as the Hugging Face
    /// "sari" metric that TRACE's 20Minuten evaluation loads computes it, in [0, 1]: texts lowercased and tokenized as
    /// sacrebleu's 13a; for n = 1..4, the F1 of kept n-grams, the precision of deleted n-grams and the F1 of added
    /// n-grams (source and output counts weighted by the number of references); the mean of the three averages.
    /// </summary>
    public static double Sari(string source, string prediction, IReadOnlyList<string> references)
    {
        var s = Tokenize13a(source.ToLowerInvariant());
        var c = Tokenize13a(prediction.ToLowerInvariant());
        var rs = references.Select(r => Tokenize13a(r.ToLowerInvariant())).ToList();
        double keep = 0, delete = 0, add = 0;
        for (var n = 1; n <= 4; n++)
        {
            var (k, d, a) = SariNgrams(NGrams(s, n), NGrams(c, n), rs.Select(r => NGrams(r, n)).ToList(), rs.Count);
            keep += k; delete += d; add += a;
        }
        return (keep / 4 + delete / 4 + add / 4) / 3;
    }

    private static (double Keep, double Delete, double Add) SariNgrams(List<string> source, List<string> output, List<List<string>> references, int referenceCount)
    {
        var sourceRep = Count(source).ToDictionary(p => p.Key, p => p.Value * referenceCount);
        var outputRep = Count(output).ToDictionary(p => p.Key, p => p.Value * referenceCount);
        var referenceAll = Count(references.SelectMany(r => r));

        // Keep: n-grams in both source and output (multiset minimum), good when also in a reference.
        var kept = Intersect(sourceRep, outputRep);
        var keptGood = Intersect(kept, referenceAll);
        var keptAll = Intersect(sourceRep, referenceAll);
        var keepPrecision = kept.Count > 0 ? kept.Sum(p => (double)keptGood.GetValueOrDefault(p.Key) / p.Value) / kept.Count : 1;
        var keepRecall = keptAll.Count > 0 ? keptGood.Values.Sum() / (double)keptAll.Values.Sum() : 1;
        var keepScore = F1(keepPrecision, keepRecall);

        // Delete: n-grams of the source the output drops (multiset difference), good when the references drop them too.
        var deleted = Subtract(sourceRep, outputRep);
        var deletedGood = Subtract(deleted, referenceAll);
        var deletePrecision = deleted.Count > 0 ? deleted.Sum(p => (double)deletedGood.GetValueOrDefault(p.Key) / p.Value) / deleted.Count : 1;

        // Add: n-gram types of the output not in the source, good when in a reference (sets, not counts).
        var added = output.Distinct().Where(g => !sourceRep.ContainsKey(g)).ToList();
        var addedGood = added.Count(referenceAll.ContainsKey);
        var addable = referenceAll.Keys.Count(g => !sourceRep.ContainsKey(g));
        var addPrecision = added.Count > 0 ? (double)addedGood / added.Count : 1;
        var addRecall = addable > 0 ? (double)addedGood / addable : 1;
        return (keepScore, deletePrecision, F1(addPrecision, addRecall));
    }

    private static double F1(double precision, double recall) => precision > 0 || recall > 0 ? 2 * precision * recall / (precision + recall) : 0;

    private static Dictionary<string, int> Count(IEnumerable<string> grams)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var g in grams) counts[g] = counts.GetValueOrDefault(g) + 1;
        return counts;
    }

    private static Dictionary<string, int> Intersect(Dictionary<string, int> a, Dictionary<string, int> b) =>
        a.Where(p => b.ContainsKey(p.Key)).ToDictionary(p => p.Key, p => Math.Min(p.Value, b[p.Key]), StringComparer.Ordinal);

    private static Dictionary<string, int> Subtract(Dictionary<string, int> a, Dictionary<string, int> b) =>
        a.Select(p => (p.Key, Value: p.Value - b.GetValueOrDefault(p.Key))).Where(p => p.Value > 0).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

    private static List<string> NGrams(string[] tokens, int n) =>
        Enumerable.Range(0, Math.Max(0, tokens.Length - n + 1)).Select(i => string.Join(' ', tokens, i, n)).ToList();

    // sacrebleu's 13a tokenizer (mteval-v13a): punctuation and symbols become their own tokens, except '.' and ','
    // between digits and '-' before a non-digit.
    private static readonly (Regex Pattern, string Replacement)[] Rules13a =
    [
        (new Regex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])", RegexOptions.CultureInvariant), " $1 "),
        (new Regex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant), "$1 $2 "),
        (new Regex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant), " $1 $2"),
        (new Regex(@"([0-9])(-)", RegexOptions.CultureInvariant), "$1 $2 "),
    ];

    private static string[] Tokenize13a(string text)
    {
        var line = text.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&')) line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        line = $" {line} ";
        foreach (var (pattern, replacement) in Rules13a) line = pattern.Replace(line, replacement);
        return line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }
}
