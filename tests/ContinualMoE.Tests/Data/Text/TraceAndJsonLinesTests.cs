using System.Text.Json;
using ContinualMoE.Data.Text;

namespace ContinualMoE.Tests.Data.Text;

/// <summary>TRACE's prompt/answer JSON and the generic JSON-lines format.</summary>
public sealed class TraceAndJsonLinesTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-textjson-");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void TraceLoadsItsEightTasksInOrderAsGeneration()
    {
        foreach (var name in TraceBenchmark.Order) TextBenchmarkFiles.WriteTraceDataset(_root, name, train: 5, test: 3);
        var tasks = TraceBenchmark.Load(_root);
        Assert.Equal(["C-STANCE", "FOMC", "MeetingBank", "Py150", "ScienceQA", "NumGLUE-cm", "NumGLUE-ds", "20Minuten"], tasks.Select(t => t.Name));
        Assert.All(tasks, t => Assert.False(t.IsClassification));
        Assert.Equal(new TextExample("", "FOMC train question 2?", "answer 2"), tasks[1].Train[2]);
        Assert.Equal(3, tasks[7].Test.Count);
        var limited = TraceBenchmark.Load(_root, "py150,FOMC", new TextTaskOptions { TrainLimit = 2, Seed = 1 });
        Assert.Equal(["Py150", "FOMC"], limited.Select(t => t.Name));
        Assert.Equal(2, limited[0].Train.Count);
    }

    [Fact]
    public void TraceReadsJsonLinesTooAndNamesTheLineOfABadOne()
    {
        TextBenchmarkFiles.WriteTraceDataset(_root, "FOMC", 2, 2);
        var train = Path.Combine(_root, "FOMC", "train.json");
        File.WriteAllText(train, "{\"prompt\": \"p1\", \"answer\": \"A\"}\n\n{\"prompt\": \"p2\", \"answer\": \"B\"}\n");
        Assert.Equal(["A", "B"], TraceBenchmark.Load(_root, "FOMC")[0].Train.Select(e => e.Output));
        File.WriteAllText(train, "{\"prompt\": \"p1\", \"answer\": \"A\"}\n{\"prompt\": \"p2\" \"answer\": \"B\"}\n");
        Assert.StartsWith(train + ": line 2: malformed JSON", Assert.Throws<ContinualMoEException>(() => TraceBenchmark.Load(_root, "FOMC")).Message);
        File.WriteAllText(train, "{\"prompt\": \"p1\", \"answer\": \"A\"}\n{\"prompt\": \"p2\"}\n");
        Assert.Equal(train + ": line 2: missing field \"answer\"", Assert.Throws<ContinualMoEException>(() => TraceBenchmark.Load(_root, "FOMC")).Message);
        Assert.Contains("unknown TRACE dataset 'GSM8K'", Assert.Throws<ContinualMoEException>(() => TraceBenchmark.Load(_root, "GSM8K")).Message);
        Assert.Contains(Path.Combine(_root, "Py150"), Assert.Throws<ContinualMoEException>(() => TraceBenchmark.Load(_root, "Py150")).Message);
    }

    private static string Line(string instruction, string input, string output, string[]? labels = null, string? task = null)
    {
        var row = new Dictionary<string, object> { ["instruction"] = instruction, ["input"] = input, ["output"] = output };
        if (labels != null) row["labels"] = labels;
        if (task != null) row["task"] = task;
        return JsonSerializer.Serialize(row);
    }

    [Fact]
    public void JsonLinesFolderOfTaskFoldersWithSplitFilesAndLabels()
    {
        var tasks = Path.Combine(_root, "mine");
        Directory.CreateDirectory(Path.Combine(tasks, "b-sentiment"));
        Directory.CreateDirectory(Path.Combine(tasks, "a-qa"));
        File.WriteAllLines(Path.Combine(tasks, "b-sentiment", "train.jsonl"), [Line("Rate it.", "good film", "pos"), Line("Rate it.", "bad film", "neg")]);
        File.WriteAllLines(Path.Combine(tasks, "b-sentiment", "test.jsonl"), [Line("Rate it.", "fine film", "pos")]);
        File.WriteAllText(Path.Combine(tasks, "b-sentiment", "labels.json"), """["neg", "pos"]""");
        File.WriteAllLines(Path.Combine(tasks, "a-qa", "data.jsonl"), Enumerable.Range(0, 10).Select(i => Line("Answer.", $"q{i}", $"a{i}")));

        var loaded = JsonLinesTaskLoader.Load(tasks, options: new TextTaskOptions { TestFraction = 0.3, Seed = 3 });
        Assert.Equal(["a-qa", "b-sentiment"], loaded.Select(t => t.Name));
        Assert.Equal(7, loaded[0].Train.Count);
        Assert.Equal(3, loaded[0].Test.Count);
        Assert.Empty(loaded[0].Train.Intersect(loaded[0].Test));
        Assert.False(loaded[0].IsClassification);
        Assert.Equal(["neg", "pos"], loaded[1].Labels);
        Assert.Equal(new TextExample("Rate it.", "fine film", "pos"), loaded[1].Test[0]);
        var again = JsonLinesTaskLoader.Load(tasks, options: new TextTaskOptions { TestFraction = 0.3, Seed = 3 });
        Assert.Equal(loaded[0].Test, again[0].Test);
        var reordered = JsonLinesTaskLoader.Load(tasks, "b-sentiment,a-qa");
        Assert.Equal(["b-sentiment", "a-qa"], reordered.Select(t => t.Name));
    }

    [Fact]
    public void JsonLinesSingleFileGroupsByTaskInOrderOfAppearance()
    {
        var file = Path.Combine(_root, "all.jsonl");
        File.WriteAllLines(file, Enumerable.Range(0, 6).SelectMany(i => new[]
        {
            Line("", $"x{i}", i % 2 == 0 ? "yes" : "no", ["yes", "no"], task: "zeta"),
            Line("Say it.", $"y{i}", $"out{i}", task: "alpha"),
        }));
        var tasks = JsonLinesTaskLoader.Load(file, options: new TextTaskOptions { TestFraction = 0.5 });
        Assert.Equal(["zeta", "alpha"], tasks.Select(t => t.Name));
        Assert.Equal(["yes", "no"], tasks[0].Labels);
        Assert.Equal(3, tasks[0].Test.Count);
        Assert.Equal(6, tasks[1].Train.Count + tasks[1].Test.Count);

        var files = Path.Combine(_root, "files");
        Directory.CreateDirectory(files);
        File.WriteAllLines(Path.Combine(files, "t1.train.jsonl"), [Line("", "a", "b")]);
        File.WriteAllLines(Path.Combine(files, "t1.test.jsonl"), [Line("", "c", "d")]);
        File.WriteAllLines(Path.Combine(files, "t0.jsonl"), [Line("", "e", "f"), Line("", "g", "h")]);
        var byFile = JsonLinesTaskLoader.Load(files);
        Assert.Equal(["t0", "t1"], byFile.Select(t => t.Name));
        Assert.Equal(new TextExample("", "c", "d"), byFile[1].Test.Single());
    }

    [Fact]
    public void JsonLinesErrorsNameFileAndLine()
    {
        var file = Path.Combine(_root, "task.jsonl");
        void Write(params string[] lines) => File.WriteAllLines(file, lines);
        string Error() => Assert.Throws<ContinualMoEException>(() => JsonLinesTaskLoader.Load(file)).Message;

        Write(Line("", "a", "b"), "{\"input\": \"x\", \"output\": }", Line("", "c", "d"));
        Assert.StartsWith(file + ": line 2: malformed JSON", Error());
        Write(Line("", "a", "b"), "", "{\"input\": \"x\"}");
        Assert.Equal(file + ": line 3: missing field \"output\"", Error());
        Write(Line("", "a", "yes", ["yes", "no"]), Line("", "b", "maybe"));
        Assert.Equal(file + ": line 2: unknown label 'maybe' (task 'task' has labels: yes, no)", Error());
        Write(Line("", "a", "b"));
        Assert.Contains("needs at least 2", Error());
        Write("");
        Assert.Contains("no tasks", Error());
        Write("[1, 2]");
        Assert.Equal(file + ": line 1: expected a JSON object", Error());
        Assert.EndsWith("JSON-lines task file or folder not found", Assert.Throws<ContinualMoEException>(() => JsonLinesTaskLoader.Load(Path.Combine(_root, "nope"))).Message);
        Write(Line("", "a", "b"), Line("", "c", "d"));
        Assert.Equal(_root + ": unknown task 'other' in the order; tasks here: task", Assert.Throws<ContinualMoEException>(() => JsonLinesTaskLoader.Load(_root, "other")).Message);
    }
}
