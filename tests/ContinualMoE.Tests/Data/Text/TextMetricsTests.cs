using ContinualMoE.Data.Text;

namespace ContinualMoE.Tests.Data.Text;

/// <summary>The per-task metrics against values worked out by hand (and, where noted, CPython's difflib).</summary>
public sealed class TextMetricsTests
{
    private static TextExample Reference(string output, string input = "") => new("", input, output);

    [Fact]
    public void ExactMatchCountsEmptyPredictionsAsWrongButKeepsThemInTheDenominator()
    {
        var references = new[] { Reference("A"), Reference("B"), Reference("C"), Reference("D") };
        // TRACE metrics.py: "" scores 0 and still counts, so 2 right of 4.
        Assert.Equal(0.5, TextMetrics.Score(TextMetric.ExactMatch, ["A", "b", "C", ""], references));
    }

    [Fact]
    public void RunsScoreEachAnswerByItsTasksMetricGradedWhereTraceGrades()
    {
        // Right/wrong metrics give 1 or 0 after trimming; the graded ones give the per-sample figure of the trimmed
        // answer, the same value Score averages, and SARI reads the example's input as its source.
        Assert.Equal(1.0, TextMetrics.AnswerMetricFor("C-STANCE")(" A ", "A", ""));
        Assert.Equal(0.0, TextMetrics.AnswerMetricFor("anything else")("A", "B", ""));
        Assert.Equal(1.0, TextMetrics.AnswerMetricFor("ScienceQA")(" B\nwhy", "B\nbecause", ""));
        Assert.Equal(TextMetrics.RougeL("a b c d", "a c e"), TextMetrics.AnswerMetricFor("MeetingBank")(" a b c d ", "a c e", "x"), 12);
        Assert.InRange(TextMetrics.AnswerMetricFor("MeetingBank")("a b c d", "a c e", ""), 0.01, 0.99);
        Assert.Equal(TextMetrics.Score(TextMetric.EditSimilarity, ["def f(x):"], [Reference("def g(x):")]),
            TextMetrics.AnswerMetricFor("Py150")("def f(x): ", "def g(x):", ""), 12);
        const string source = "About 95 species are currently accepted.";
        var sari = TextMetrics.AnswerMetricFor("20Minuten")("About 95 species are accepted.", "About 95 species are currently known.", source);
        Assert.Equal(TextMetrics.Sari(source, "About 95 species are accepted.", ["About 95 species are currently known."]), sari, 12);
        Assert.NotEqual(sari, TextMetrics.AnswerMetricFor("20Minuten")("About 95 species are accepted.", "About 95 species are currently known.", "Other words entirely."));
        Assert.Equal(0.0, TextMetrics.AnswerMetricFor("MeetingBank")("   ", "a c e", ""));   // empty answer: 0, as TRACE
    }

    [Fact]
    public void ScienceQaAccuracyReadsTheAnswerLetterOnly()
    {
        var references = new[] { Reference("B\nBecause plants make food."), Reference("A\nBecause.") };
        Assert.Equal(0.5, TextMetrics.Score(TextMetric.FirstCharacterMatch, ["B\nsome other reasoning", "C\nBecause."], references));
    }

    [Fact]
    public void RougeLCountsDistinctWordsAndUnitesSentenceLcs()
    {
        // One sentence each; distinct words 5 and 5 ("the" once); LCS "the cat on the mat" as a set {the, cat, on, mat}
        // = 4, so P = R = 4/5 and F = 2PR/(P+R+1e-8).
        Assert.Equal(2 * 0.64 / (1.6 + 1e-8), TextMetrics.RougeL("the cat sat on the mat", "the cat is on the mat"), 12);
        // LCS {a, c} over 4 and 3 distinct words: P = 1/2, R = 2/3, F = 4/7 (less the 1e-8 guard).
        Assert.Equal(2 * (1.0 / 3) / (7.0 / 6 + 1e-8), TextMetrics.RougeL("a b c d", "a c e"), 12);
        // Two sentences each: the union of the sentence-pair LCSs is {a, b, c, d}, so F = 1 (the LCS of the whole
        // token sequences would give only 3 of 4).
        Assert.Equal(2 * 1.0 / (2 + 1e-8), TextMetrics.RougeL("a b. c d.", "a c. b d."), 12);
        Assert.Equal(0.0, TextMetrics.RougeL("x y", "a b"));
        Assert.Equal(0.0, TextMetrics.RougeL("...", "a b"));
        Assert.Equal(2 * 1.0 / (2 + 1e-8), TextMetrics.Score(TextMetric.RougeL, ["same words here"], [Reference("same words here")]), 12);
    }

    [Fact]
    public void EditSimilarityFollowsDifflibRatioRoundedToWholePercent()
    {
        // "bcd" is the only matching block: 2*3/8 = 0.75.
        Assert.Equal(0.75, TextMetrics.EditSimilarity("abcd", "bcde"));
        // Blocks "itt" then "n": 2*4/13 = 0.615 -> 62%.
        Assert.Equal(0.62, TextMetrics.EditSimilarity("kitten", "sitting"));
        // Blocks "def ", "(x): return ": 2*16/36 = 0.889 -> 89%.
        Assert.Equal(0.89, TextMetrics.EditSimilarity("def f(x): return x", "def g(x): return y"));
        // A 248-character reference: difflib does not index its popular characters (autojunk); CPython gives 0.0484 -> 5%.
        var a = string.Concat(Enumerable.Repeat("x = 1\n", 40)) + "print(a)";
        var b = string.Concat(Enumerable.Repeat("x = 2\n", 40)) + "print(b)";
        Assert.Equal(0.05, TextMetrics.EditSimilarity(a, b));
    }

    [Fact]
    public void Py150LiteralPlaceholdersAreRestoredBeforeComparing()
    {
        Assert.Equal("x = 0 + 'hi' + ", TextMetrics.RestorePy150Literals("x = <NUM_LIT> + <STR_LIT:'hi'> + <STR_LIT>"));
        Assert.Equal(1.0, TextMetrics.Score(TextMetric.EditSimilarity, ["return 0"], [Reference("return <NUM_LIT>")]));
    }

    [Fact]
    public void SariIsOneForACopyAndMatchesTheMetricCardExample()
    {
        Assert.Equal(1.0, TextMetrics.Sari("a b", "a b", ["a b"]), 12);
        // The Hugging Face "sari" metric card example: 26.953601953601954 (keep 22.53, delete 50, add 8.33).
        var sari = TextMetrics.Sari("About 95 species are currently accepted.", "About 95 you now get in.",
            ["About 95 species are currently known.", "About 95 species are now accepted.", "95 species are now accepted."]);
        Assert.Equal(0.26953601953601954, sari, 12);
    }

    [Fact]
    public void TraceTasksGetTheirMetricsAndOtherTasksExactMatch()
    {
        Assert.Equal(TextMetric.RougeL, TextMetrics.MetricFor("MeetingBank"));
        Assert.Equal(TextMetric.EditSimilarity, TextMetrics.MetricFor("Py150"));
        Assert.Equal(TextMetric.Sari, TextMetrics.MetricFor("20Minuten"));
        Assert.Equal(TextMetric.FirstCharacterMatch, TextMetrics.MetricFor("ScienceQA"));
        Assert.Equal(TextMetric.ExactMatch, TextMetrics.MetricFor("C-STANCE"));
        Assert.Equal(TextMetric.ExactMatch, TextMetrics.MetricFor("agnews"));
    }
}

/// <summary>TextMetrics against the reference implementations TRACE runs (tools/make_text_metric_fixture.py): the
/// rouge 1.0.1 package's ROUGE-L and CPython's difflib ratio.</summary>
public sealed class TextMetricsReferenceTests
{
    private static System.Text.Json.JsonElement Fixture(string name) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "text_metrics.json"))).RootElement.GetProperty(name);

    [Fact]
    public void RougeLMatchesTheRougePackage()
    {
        foreach (var c in Fixture("rouge_l").EnumerateArray())
            Assert.Equal(c.GetProperty("f").GetDouble(), TextMetrics.RougeL(c.GetProperty("prediction").GetString()!, c.GetProperty("target").GetString()!), 12);
    }

    [Fact]
    public void EditSimilarityMatchesDifflib()
    {
        foreach (var c in Fixture("edit_similarity").EnumerateArray())
            Assert.Equal(c.GetProperty("percent").GetInt32() / 100.0, TextMetrics.EditSimilarity(c.GetProperty("prediction").GetString()!, c.GetProperty("target").GetString()!), 12);
    }
}
