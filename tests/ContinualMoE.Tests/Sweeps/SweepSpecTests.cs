using System.Text.Json.Nodes;
using ContinualMoE.Cli.Sweeps;

namespace ContinualMoE.Tests.Sweeps;

public class SweepSpecTests
{
    [Fact]
    public void ExpandsAxesInOrderWithStableNamesExclusionsAndMethodSettings()
    {
        using var files = new SweepTestFiles();
        var path = files.Spec("s", new JsonObject
        {
            ["base"] = SweepTestFiles.TinyBase(),
            ["set"] = new JsonArray("epochs=2"),
            ["axes"] = new JsonObject
            {
                ["method"] = new JsonArray("smope", "ncm"),
                ["tasks"] = new JsonArray(2, 4),
                ["method.noise_epsilon"] = new JsonArray(0.1, null),
                ["seed"] = new JsonArray(0, 1),
            },
            // Any of the listed methods, with 4 tasks; and every run with epsilon null for smope.
            ["exclude"] = new JsonArray(
                new JsonObject { ["method"] = new JsonArray("ncm"), ["tasks"] = 4 },
                new JsonObject { ["method"] = "smope", ["method.noise_epsilon"] = null }),
        });
        var spec = SweepSpec.Load(path);
        var runs = spec.Expand(path);
        Assert.Equal("s", spec.Name);
        // 2 methods x 2 task counts x 2 epsilons x 2 seeds = 16, minus ncm with 4 tasks (4) and smope with null (4).
        Assert.Equal(8, runs.Count);
        Assert.Equal("smope-tasks2-noise_epsilon0.1-seed0", runs[0].Name);
        Assert.Equal("smope-tasks2-noise_epsilon0.1-seed1", runs[1].Name);
        Assert.Equal("ncm-tasks2-noise_epsilonnone-seed1", runs[^1].Name);
        Assert.All(runs, r => Assert.Equal(2, r.Config.Epochs));
        Assert.Equal(0.1, runs[0].Config.MethodSettings["noise_epsilon"].GetDouble());
        Assert.Equal(4, runs.Single(r => r.Name == "smope-tasks4-noise_epsilon0.1-seed1").Config.Tasks);
        // The same spec expands to the same names in the same order.
        Assert.Equal(runs.Select(r => r.Name), SweepSpec.Load(path).Expand(path).Select(r => r.Name));
    }

    [Fact]
    public void BasePathIsRelativeToTheSpecAndErrorsNameTheFile()
    {
        using var files = new SweepTestFiles();
        Directory.CreateDirectory(Path.Combine(files.Root, "configs"));
        File.WriteAllText(Path.Combine(files.Root, "configs", "base.json"), SweepTestFiles.TinyBase(tasks: 3).ToJsonString());
        var path = files.Spec("b", new JsonObject { ["base"] = "configs/base.json", ["axes"] = new JsonObject { ["seed"] = new JsonArray(5) } });
        var run = Assert.Single(SweepSpec.Load(path).Expand(path));
        Assert.Equal((3, 5, "seed5"), (run.Config.Tasks, run.Config.Seed, run.Name));

        var unknownKey = files.Spec("k", new JsonObject { ["axis"] = new JsonObject() });
        Assert.Contains("unknown sweep spec key 'axis'", Assert.Throws<ContinualMoEException>(() => SweepSpec.Load(unknownKey)).Message);
        var unknownSetting = files.Spec("u", new JsonObject { ["axes"] = new JsonObject { ["sed"] = new JsonArray(1) } });
        var error = Assert.Throws<ContinualMoEException>(() => SweepSpec.Load(unknownSetting).Expand(unknownSetting));
        Assert.StartsWith(unknownSetting, error.Message);
        Assert.Contains("unknown setting 'sed'", error.Message);
        var unknownMethod = files.Spec("m", new JsonObject { ["axes"] = new JsonObject { ["method"] = new JsonArray("smop") } });
        Assert.Contains("run smop:", Assert.Throws<ContinualMoEException>(() => SweepSpec.Load(unknownMethod).Expand(unknownMethod)).Message);
    }

    [Fact]
    public void AWidenedSpecAppendsRunsAndKeepsIndicesAChangedOneIsRefused()
    {
        using var files = new SweepTestFiles();
        JsonObject Spec(JsonArray seeds, int epochs = 1) => new()
        {
            ["name"] = "w", ["base"] = SweepTestFiles.TinyBase(), ["set"] = new JsonArray($"epochs={epochs}"),
            ["axes"] = new JsonObject { ["method"] = new JsonArray("ncm", "joint"), ["seed"] = seeds },
        };
        var folder = files.Folder("w");
        var first = files.Spec("w1", Spec(new JsonArray(1, 2)));
        var before = SweepFolder.Prepare(folder, SweepSpec.Load(first), first).Runs.Select(r => r.Name).ToList();
        Assert.Equal(["ncm-seed1", "ncm-seed2", "joint-seed1", "joint-seed2"], before);
        Assert.True(File.Exists(Path.Combine(folder, "configs", "joint-seed2.json")));

        var wider = files.Spec("w2", Spec(new JsonArray(1, 2, 3)));
        var after = SweepFolder.Prepare(folder, SweepSpec.Load(wider), wider).Runs.Select(r => r.Name).ToList();
        Assert.Equal([.. before, "ncm-seed3", "joint-seed3"], after);
        Assert.Equal(after, SweepFolder.Open(folder).Runs.Select(r => r.Name));

        var changed = files.Spec("w3", Spec(new JsonArray(1, 2, 3), epochs: 2));
        Assert.Contains("different config", Assert.Throws<ContinualMoEException>(() => SweepFolder.Prepare(folder, SweepSpec.Load(changed), changed)).Message);
        var narrower = files.Spec("w4", Spec(new JsonArray(1)));
        Assert.Contains("no longer makes", Assert.Throws<ContinualMoEException>(() => SweepFolder.Prepare(folder, SweepSpec.Load(narrower), narrower)).Message);
    }

    [Fact]
    public void AClaimIsExclusiveUntilItsHolderLetsGo()
    {
        using var files = new SweepTestFiles();
        var path = Path.Combine(files.Root, "claims", "run.lock");
        var first = SweepClaim.TryAcquire(path);
        Assert.NotNull(first);
        Assert.Null(SweepClaim.TryAcquire(path));
        Assert.True(SweepClaim.IsHeld(path));
        first.Dispose();
        Assert.False(SweepClaim.IsHeld(path));
        using var second = SweepClaim.TryAcquire(path);
        Assert.NotNull(second);
    }

    [Theory]
    [InlineData(new[] { 0, 1, 2, 3 }, "0-3")]
    [InlineData(new[] { 5, 0, 2, 3, 9, 8 }, "0,2-3,5,8-9")]
    [InlineData(new[] { 7 }, "7")]
    public void SlurmIndexListsAreCompact(int[] indices, string expected) => Assert.Equal(expected, SlurmSweep.IndexRanges(indices));
}

public class ShippedSweepSpecTests
{
    public static TheoryData<string> Specs()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(RepositoryPaths.Configs, "sweeps"), "*.json").Order()) data.Add(Path.GetFileName(file));
        return data;
    }

    /// <summary>Every shipped sweep spec expands to valid runs (methods, datasets, backbones, scenario settings), seeds 0-2.</summary>
    [Theory]
    [MemberData(nameof(Specs))]
    public void ShippedSpecExpandsToValidRuns(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, "sweeps", file);
        var spec = SweepSpec.Load(path);
        var runs = spec.Expand(path);
        Assert.Equal(Path.GetFileNameWithoutExtension(file), spec.Name);
        Assert.Equal([0, 1, 2], runs.Select(r => r.Config.Seed).Distinct().Order());
        Assert.Equal(runs.Count, runs.Select(r => r.Name).Distinct().Count());
    }
}
