using ContinualMoE.Data.Text;

namespace ContinualMoE.Tests.Data.Text;

/// <summary>Spec parsing, the registry for the generated text benchmark, and one-line errors.</summary>
public sealed class TextTaskCatalogTests : IDisposable
{
    private readonly string _root = TestFiles.TempFolder("cmoe-textcatalog-");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void SpecsSelectKindPathOrderAndSettings()
    {
        var benchmark = Path.Combine(_root, "CL_Benchmark");
        TextBenchmarkFiles.WriteFourTaskBenchmark(benchmark, trainPerLabel: 6);
        var tasks = TextTaskCatalog.Load($"cl-benchmark:{benchmark}:order3:train-per-class=2:seed=5");
        Assert.Equal(["yahoo", "amazon", "agnews", "dbpedia"], tasks.Select(t => t.Name));
        Assert.Equal(8, tasks[2].Train.Count);
        Assert.Equal(["dbpedia", "amazon", "yahoo", "agnews"], TextTaskCatalog.Load($"cl-benchmark:{benchmark}").Select(t => t.Name));

        var spec = TextTaskCatalog.Parse($"trace:{_root}:FOMC,Py150:test-limit=5:test-fraction=0.1", new TextTaskOptions { Seed = 9 });
        Assert.Equal(("trace", _root, "FOMC,Py150"), (spec.Kind, spec.Path, spec.Argument));
        Assert.Equal(new TextTaskOptions { Seed = 9, TestLimit = 5, TestFraction = 0.1 }, spec.Options);
    }

    [Fact]
    public void RegisteredKindsPlugInAndGetTheirOwnSettings()
    {
        TextTaskCatalog.Register("test-generated-text", "test-generated-text[:tasks=N] — test only", spec =>
        {
            var count = int.Parse(spec.Settings.GetValueOrDefault("tasks", "2"));
            return Enumerable.Range(0, count).Select(i => new TextTaskData($"g{i}",
                [new TextExample("", $"seed {spec.Options.Seed}", "a")], [new TextExample("", "q", "a")], [])).ToList();
        });
        Assert.Contains("test-generated-text", TextTaskCatalog.Names);
        Assert.Contains(TextTaskCatalog.Help, h => h.StartsWith("test-generated-text"));
        Assert.True(TextTaskCatalog.IsKnown("test-generated-text:tasks=3"));
        var tasks = TextTaskCatalog.Load("test-generated-text:tasks=3:seed=4");
        Assert.Equal(["g0", "g1", "g2"], tasks.Select(t => t.Name));
        Assert.Equal("seed 4", tasks[0].Train[0].Input);
        Assert.Throws<ArgumentException>(() => TextTaskCatalog.Register("jsonl", "x", _ => []));

        TextTaskCatalog.Register("test-empty-text", "test only", _ => [new TextTaskData("e", [], [new TextExample("", "q", "a")], [])]);
        Assert.Equal("text task 'e' of 'test-empty-text' has no training examples",
            Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load("test-empty-text")).Message);
    }

    [Fact]
    public void BadSpecsAreOneLineErrors()
    {
        Assert.StartsWith("unknown text tasks 'cifar100'; valid kinds: ", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load("cifar100")).Message);
        Assert.Contains("need a path", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load("trace")).Message);
        Assert.Contains("unknown setting 'epochs'", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load($"jsonl:{_root}:epochs=3")).Message);
        Assert.Contains("must be a positive integer", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load($"jsonl:{_root}:train-limit=0")).Message);
        Assert.Contains("between 0 and 1", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load($"jsonl:{_root}:test-fraction=1.5")).Message);
        Assert.Contains("unknown task order 'order7'", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load($"long-sequence:{_root}:order7")).Message);
        Assert.Contains("CL benchmark folder not found", Assert.Throws<ContinualMoEException>(() => TextTaskCatalog.Load($"cl-benchmark:{_root}/none")).Message);
        Assert.False(TextTaskCatalog.IsKnown("cifar100"));
        Assert.True(TextTaskCatalog.Help.Count >= 6);
    }
}
