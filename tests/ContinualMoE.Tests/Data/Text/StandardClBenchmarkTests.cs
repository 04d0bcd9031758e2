using ContinualMoE.Data.Text;

namespace ContinualMoE.Tests.Data.Text;

/// <summary>O-LoRA's CL_Benchmark JSON layout and the original CSV files of the five classification datasets.</summary>
public sealed class StandardClBenchmarkTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-clbench-");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Benchmark => Path.Combine(_root, "CL_Benchmark");

    [Fact]
    public void OrdersAreThePublishedOnes()
    {
        Assert.Equal(["dbpedia", "amazon", "yahoo", "agnews"], StandardClBenchmark.Orders["order1"]);
        Assert.Equal(["dbpedia", "amazon", "agnews", "yahoo"], StandardClBenchmark.Orders["order2"]);
        Assert.Equal(["yahoo", "amazon", "agnews", "dbpedia"], StandardClBenchmark.Orders["order3"]);
        foreach (var order in new[] { "order4", "order5", "order6" })
        {
            Assert.Equal(15, StandardClBenchmark.Orders[order].Count);
            Assert.Equal(StandardClBenchmark.Datasets.Select(d => d.Name).Order(), StandardClBenchmark.Orders[order].Order());
        }
        Assert.Equal("yelp", StandardClBenchmark.Orders["order6"][0]);   // O-LoRA scripts/long.sh starts with yelp, amazon, MNLI
        Assert.Equal("MNLI", StandardClBenchmark.Orders["order4"][0]);
        Assert.Equal("MultiRC", StandardClBenchmark.Orders["order5"][0]);
    }

    [Fact]
    public void Order1LoadsTheTasksInOrderWithTheOLoraPromptFromTheInstructionFile()
    {
        TextBenchmarkFiles.WriteFourTaskBenchmark(Benchmark);
        TextBenchmarkFiles.WriteInstructionConfig(Path.Combine(_root, "configs", "instruction_config.json"), "TC", "SC");
        var tasks = StandardClBenchmark.Load(_root, "order1");   // an O-LoRA checkout: CL_Benchmark/ and configs/ side by side
        Assert.Equal(["dbpedia", "amazon", "yahoo", "agnews"], tasks.Select(t => t.Name));
        var agnews = tasks[3];
        Assert.Equal(["World", "Sports", "Business", "Science or Technology"], agnews.Labels);
        Assert.True(agnews.IsClassification);
        Assert.Equal(12, agnews.Train.Count);
        Assert.Equal(8, agnews.Test.Count);
        var first = agnews.Train[0];
        Assert.Equal("Instruction for TC.\nOption: World, Sports, Business, Science or Technology \n", first.Instruction);
        Assert.Equal("Title: agnews train 0\nText: synthetic text about World number 0.\n", first.Input);
        Assert.Equal("World", first.Output);
        Assert.Equal(first.Instruction + first.Input + "\nAnswer:", StandardClBenchmark.PromptOf(first));
        Assert.StartsWith("Instruction for SC.\nOption: very negative,", tasks[1].Train[0].Instruction);
    }

    [Fact]
    public void WithoutTheInstructionFileTheProjectsInstructionsAreUsedAndCopaHasNone()
    {
        TextBenchmarkFiles.WriteFourTaskBenchmark(Benchmark);
        TextBenchmarkFiles.WriteClDataset(Benchmark, "COPA", "COPA", ["A", "B"], 2, 1);
        var tasks = StandardClBenchmark.Load(Benchmark, "agnews,copa");
        Assert.EndsWith("Option: World, Sports, Business, Science or Technology \n", tasks[0].Train[0].Instruction);
        Assert.False(string.IsNullOrEmpty(tasks[0].Train[0].Instruction.Split("Option:")[0]));
        Assert.Equal("COPA", tasks[1].Name);
        Assert.Equal("", tasks[1].Train[0].Instruction);
    }

    [Fact]
    public void PerClassSamplingIsSeededBalancedAndKeepsFileOrder()
    {
        TextBenchmarkFiles.WriteFourTaskBenchmark(Benchmark, trainPerLabel: 10);
        var options = new TextTaskOptions { TrainPerClass = 4, Seed = 7 };
        var a = StandardClBenchmark.Load(Benchmark, "agnews", options)[0];
        var b = StandardClBenchmark.Load(Benchmark, "agnews", options)[0];
        var c = StandardClBenchmark.Load(Benchmark, "agnews", options with { Seed = 8 })[0];
        Assert.Equal(16, a.Train.Count);
        Assert.All(a.Train.GroupBy(e => e.Output), g => Assert.Equal(4, g.Count()));
        Assert.Equal(a.Train, b.Train);
        Assert.NotEqual(a.Train, c.Train);
        var all = StandardClBenchmark.Load(Benchmark, "agnews")[0].Train.ToList();
        var positions = a.Train.Select(e => all.IndexOf(e)).ToList();
        Assert.Equal(positions.Order(), positions);
    }

    [Fact]
    public void MnliPairsWithoutGoldLabelAreDropped()
    {
        TextBenchmarkFiles.WriteClDataset(Benchmark, "NLI", "MNLI", ["neutral", "entailment", "contradiction"], 2, 1);
        File.WriteAllText(Path.Combine(Benchmark, "NLI", "MNLI", "test.json"),
            """[{"sentence": "sentence 1: a\nsentence 2: b", "label": "neutral"}, {"sentence": "sentence 1: c\nsentence 2: d", "label": "-"}]""");
        var mnli = StandardClBenchmark.Load(Benchmark, "mnli")[0];
        Assert.Equal("MNLI", mnli.Name);
        Assert.Single(mnli.Test);
    }

    [Fact]
    public void BadFilesAreOneLineErrorsNamingTheFile()
    {
        TextBenchmarkFiles.WriteFourTaskBenchmark(Benchmark);
        var train = Path.Combine(Benchmark, "TC", "agnews", "train.json");

        var order = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "order9"));
        Assert.Contains("unknown task order 'order9'", order.Message);
        var name = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews,imagenet"));
        Assert.Contains("unknown dataset 'imagenet'", name.Message);
        var missing = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "yelp"));
        Assert.Contains(Path.Combine("SC", "yelp"), missing.Message);

        File.WriteAllText(train, "[{\"label\": \"World\", \"sentence\": \"x\"},\n {\"label\": \"World\" \"sentence\": \"y\"}]");
        var malformed = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews"));
        Assert.StartsWith(train + ": line 2: malformed JSON", malformed.Message);

        File.WriteAllText(train, """[{"label": "World", "sentence": "x"}, {"label": "World"}]""");
        var field = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews"));
        Assert.Equal(train + ": example 2: missing field \"sentence\"", field.Message);

        File.WriteAllText(train, """[{"label": "Weather", "sentence": "x"}]""");
        var label = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews"));
        Assert.StartsWith(train + ": example 1: unknown label 'Weather'", label.Message);

        File.WriteAllText(train, "[]");
        var empty = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews"));
        Assert.Equal(train + ": no examples", empty.Message);

        File.Delete(train);
        var gone = Assert.Throws<ContinualMoEException>(() => StandardClBenchmark.Load(Benchmark, "agnews"));
        Assert.Equal(train + ": file not found", gone.Message);
        Assert.All(new[] { order, name, missing, malformed, field, label, empty, gone }, e => Assert.DoesNotContain('\n', e.Message));
    }

    [Fact]
    public void OriginalCsvFilesGiveTheSameLabelTextsAndTitleTextInputs()
    {
        var csv = Path.Combine(_root, "csv");
        // AG News rows: class index, title, description (quoted, "" inside, commas inside).
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "ag_news_csv", "train.csv"), Enumerable.Range(0, 4).Select(i =>
            new[] { (i % 4 + 1).ToString(), $"Headline {i}, with \"quotes\"", $"Body {i}\\line two" }));
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "ag_news_csv", "test.csv"), [["3", "Markets", "Stocks rose."]]);
        // Yelp: class index and one text column; Yahoo: class index and three text columns (title, content, answer).
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "yelp_review_full_csv", "train.csv"), [["5", "Great food."], ["1", "Cold soup."]]);
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "yelp_review_full_csv", "test.csv"), [["3", "Fine."]]);
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "yahoo_answers_csv", "train.csv"), [["10", "Why vote?", "Asking", "Because."]]);
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "yahoo_answers_csv", "test.csv"), [["2", "Why sky blue?", "", "Scattering."]]);

        var tasks = ZhangCsvLoader.Load(csv, "agnews,yelp,yahoo");
        var ag = tasks[0];
        Assert.Equal(4, ag.Train.Count);
        Assert.Equal(["World", "Sports", "Business", "Science or Technology"], ag.Train.Select(e => e.Output));
        Assert.Equal("Title: Headline 0, with \"quotes\"\nText: Body 0\\line two\n", ag.Train[0].Input);
        Assert.Equal("Business", ag.Test[0].Output);
        Assert.Equal(["very positive", "very negative"], tasks[1].Train.Select(e => e.Output));
        Assert.Equal("Text: Great food.\n", tasks[1].Train[0].Input);
        Assert.Equal("Politics & Government", tasks[2].Train[0].Output);
        Assert.Equal("Title: Why vote?\nText: Asking Because.\n", tasks[2].Train[0].Input);
        Assert.EndsWith("Option: very negative, negative, neutral, positive, very positive \n", tasks[1].Train[0].Instruction);
    }

    [Fact]
    public void CsvDefaultsToAThousandPerClassAndRejectsBadRows()
    {
        var csv = Path.Combine(_root, "csv");
        var train = Path.Combine(csv, "ag_news_csv", "train.csv");
        TextBenchmarkFiles.WriteCsv(train, Enumerable.Range(0, 1003).Select(i => new[] { "2", $"t{i}", $"b{i}" }));
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "ag_news_csv", "test.csv"), [["1", "a", "b"]]);
        Assert.Equal(ZhangCsvLoader.DefaultTrainPerClass, ZhangCsvLoader.Load(csv, "agnews")[0].Train.Count);
        // The streamed reservoir is seeded: the same seed keeps the same rows (in file order), another seed others.
        var a = ZhangCsvLoader.Load(csv, "agnews", new TextTaskOptions { TrainPerClass = 10, Seed = 1 })[0].Train;
        Assert.Equal(a, ZhangCsvLoader.Load(csv, "agnews", new TextTaskOptions { TrainPerClass = 10, Seed = 1 })[0].Train);
        Assert.NotEqual(a, ZhangCsvLoader.Load(csv, "agnews", new TextTaskOptions { TrainPerClass = 10, Seed = 2 })[0].Train);
        var rows = a.Select(e => int.Parse(e.Input.Split('\n')[0]["Title: t".Length..])).ToList();
        Assert.Equal(rows.Order(), rows);
        TextBenchmarkFiles.WriteCsv(Path.Combine(csv, "ag_news_csv", "test.csv"), Enumerable.Range(0, 8000).Select(i => new[] { $"{i % 4 + 1}", "a", "b" }));
        Assert.Equal(ZhangCsvLoader.DefaultTestLimit, ZhangCsvLoader.Load(csv, "agnews")[0].Test.Count);

        File.WriteAllText(train, "\"1\",\"a\",\"b\"\n\"7\",\"c\",\"d\"\n");
        Assert.Equal(train + ": line 2: unknown label '7' (class indices of agnews are 1..4)",
            Assert.Throws<ContinualMoEException>(() => ZhangCsvLoader.Load(csv, "agnews")).Message);
        File.WriteAllText(train, "\"1\",\"a\",\"multi\nline\"\n\"2\",\"only title\"\n");
        Assert.StartsWith(train + ": line 3: expected 3 columns",
            Assert.Throws<ContinualMoEException>(() => ZhangCsvLoader.Load(csv, "agnews")).Message);
        File.WriteAllText(train, "\"1\",\"a\",\"never closed\n");
        Assert.StartsWith(train + ": line 1: a quoted field is not closed",
            Assert.Throws<ContinualMoEException>(() => ZhangCsvLoader.Load(csv, "agnews")).Message);
        Assert.Contains("has no original CSV files", Assert.Throws<ContinualMoEException>(() => ZhangCsvLoader.Load(csv, "order4")).Message);
    }
}
