using System.CommandLine;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Tests.Cli;

namespace ContinualMoE.Tests.Sweeps;

public class SweepExecutionTests
{
    private static double Metric(string runFolder, string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(runFolder, "metrics.json")))!["metrics"]![name]!.GetValue<double>();

    [Fact]
    public void LocalSweepReportsMeanAndStdOverSeedsListsFailuresAndSkipsCompleteRuns()
    {
        using var files = new SweepTestFiles();
        // Fashion-MNIST from a folder that does not exist fails when the run loads its data: a failed run.
        var spec = files.Spec("local", new JsonObject
        {
            ["base"] = SweepTestFiles.TinyBase(), ["set"] = new JsonArray($"data_root=\"{Path.Combine(files.Root, "no-such-folder")}\""),
            ["axes"] = new JsonObject { ["dataset"] = new JsonArray("generated", "fashion-mnist"), ["method"] = new JsonArray("ncm", "finetune-head"), ["seed"] = new JsonArray(1, 2) },
            ["exclude"] = new JsonArray(new JsonObject { ["dataset"] = "fashion-mnist", ["method"] = "finetune-head" }, new JsonObject { ["dataset"] = "fashion-mnist", ["seed"] = 2 }),
        });
        var folder = files.Folder("out");
        var code = SweepCommand.Create().Parse([spec, "--output", folder]).Invoke();
        Assert.Equal(1, code);   // one run failed

        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "report", "summary.json")))!;
        Assert.Equal(4, report["runs_complete"]!.GetValue<int>());
        Assert.Equal(5, report["runs_expected"]!.GetValue<int>());
        var generated = report["groups"]!.AsArray().Single(g => g!["dataset"]!.GetValue<string>() == "generated")!;
        var ncm = generated["rows"]!.AsArray().Single(r => r!["setting"]!.GetValue<string>() == "ncm")!;
        var faa = new[] { 1, 2 }.Select(seed => Metric(Path.Combine(folder, "runs", $"generated-ncm-seed{seed}"), "final_average_accuracy")).ToArray();
        var column = ncm["columns"]!["final_average_accuracy"]!;
        Assert.Equal(faa.Average(), column["mean"]!.GetValue<double>(), 9);
        Assert.Equal(Math.Abs(faa[0] - faa[1]) / Math.Sqrt(2), column["std"]!.GetValue<double>(), 9);
        Assert.Equal(2, column["n"]!.GetValue<int>());
        Assert.NotNull(ncm["columns"]!["cost.trainable_parameters"]);
        Assert.NotNull(ncm["columns"]!["test_images_per_second"]);
        Assert.Equal(2, ncm["average_accuracy_curve"]!["mean"]!.AsArray().Count);

        // The failed run is listed, and its row averages nothing.
        var failed = Assert.Single(report["runs_not_averaged"]!.AsArray())!;
        Assert.Equal(("fashion-mnist-ncm-seed1", "failed"), (failed["run"]!.GetValue<string>(), failed["status"]!.GetValue<string>()));
        var fashion = report["groups"]!.AsArray().Single(g => g!["dataset"]!.GetValue<string>() == "fashion-mnist")!["rows"]![0]!;
        Assert.Equal(0, fashion["runs_complete"]!.GetValue<int>());
        Assert.Null(fashion["columns"]!["final_average_accuracy"]!["mean"]);
        var markdown = File.ReadAllText(Path.Combine(folder, "report", "summary.md"));
        Assert.Contains("| fashion-mnist-ncm-seed1 | 4 | failed |", markdown);
        Assert.Contains("| ncm | 2/2 |", markdown);
        var csv = File.ReadAllLines(Path.Combine(folder, "report", "summary.csv"));
        Assert.StartsWith("dataset,tasks,method,runs_complete,runs_expected,", csv[0]);
        Assert.StartsWith("generated,2,ncm,2,2,", csv[1]);
        foreach (var plot in new[] { "average_accuracy", "accuracy_vs_parameters", "accuracy_vs_test_speed" })
            Assert.True(File.Exists(Path.Combine(folder, "report", $"generated-tasks2_{plot}.png")), plot);

        // Again: the complete runs are skipped (no new attempts for them); only the failed run is tried again.
        var attemptsBefore = SweepTestFiles.Attempts(folder).Count;
        Assert.Equal(1, SweepCommand.Create().Parse([spec, "--output", folder]).Invoke());
        var newAttempts = SweepTestFiles.Attempts(folder).Skip(attemptsBefore).ToList();
        Assert.All(newAttempts, a => Assert.Equal("fashion-mnist-ncm-seed1", a["run"]!.GetValue<string>()));
        Assert.Equal(["started", "failed"], newAttempts.Select(a => a["event"]!.GetValue<string>()));

        // The folder itself, or its sweep.json, resumes the sweep without the spec file: again only the failed run.
        foreach (var argument in new[] { folder, Path.Combine(folder, "sweep.json") })
        {
            var before = SweepTestFiles.Attempts(folder).Count;
            Assert.Equal(1, SweepCommand.Create().Parse([argument]).Invoke());
            Assert.Equal(["fashion-mnist-ncm-seed1"], SweepTestFiles.Attempts(folder).Skip(before).Select(a => a["run"]!.GetValue<string>()).Distinct());
        }
        var elsewhere = Assert.Throws<ContinualMoE.ContinualMoEException>(() => SweepCommand.Create().Parse([folder, "--output", files.Folder("other")])
            .Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
        Assert.Contains("names another one", elsewhere.Message);
    }

    [Fact]
    public void AKilledSweepRestartedResumesItsRunWithoutDuplicatesOrLosses()
    {
        using var files = new SweepTestFiles();
        var spec = files.Spec("kill", new JsonObject
        {
            ["base"] = SweepTestFiles.TinyBase(tasks: 4, trainPerClass: 48),
            ["axes"] = new JsonObject { ["method"] = new JsonArray("finetune-head"), ["seed"] = new JsonArray(1, 2) },
        });
        var folder = files.Folder("out");
        var first = Path.Combine(folder, "runs", "finetune-head-seed1");
        using (var sweep = CliProcess.Start(["sweep", spec, "--output", folder]))
        {
            // Kill the sweep (and its run) between the first run's first checkpoint and its end.
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!File.Exists(Path.Combine(first, "checkpoint.safetensors")) && !sweep.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(20);
            Assert.False(sweep.HasExited, "the sweep ended before it could be killed mid-run");
            sweep.Kill(entireProcessTree: true);
            sweep.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(first, "metrics.json")), "the first run finished before the kill");

        Assert.Equal(0, SweepCommand.Create().Parse([spec, "--output", folder]).Invoke());
        var attempts = SweepTestFiles.Attempts(folder);
        string[] Events(string run) => attempts.Where(a => a["run"]!.GetValue<string>() == run).Select(a => a["event"]!.GetValue<string>()).ToArray();
        Assert.Equal(["started", "resumed", "completed"], Events("finetune-head-seed1"));
        Assert.Equal(["started", "completed"], Events("finetune-head-seed2"));
        // The resumed run's matrix covers every task, each once.
        var matrix = File.ReadAllLines(Path.Combine(first, "accuracy_matrix.csv"));
        Assert.Equal(4, Metric(first, "tasks_trained"));
        Assert.Equal(5, matrix.Length);
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "report", "summary.json")))!;
        Assert.Equal(2, report["runs_complete"]!.GetValue<int>());
        Assert.Empty(report["runs_not_averaged"]!.AsArray());
    }

    [Fact]
    public void ARunHeldByAnotherProcessIsWaitedForNotStartedTwice()
    {
        using var files = new SweepTestFiles();
        var spec = files.Spec("held", new JsonObject
        {
            ["base"] = SweepTestFiles.TinyBase(),
            ["axes"] = new JsonObject { ["method"] = new JsonArray("ncm"), ["seed"] = new JsonArray(1, 2) },
        });
        var folder = files.Folder("out");
        // As an orphaned worker of a killed sweep would: hold the first run's claim (a second flock on the same file
        // conflicts even within one process).
        Assert.Equal(0, SweepCommand.Create().Parse([spec, "--output", folder, "--k8s"]).Invoke());   // makes the folder, runs nothing
        var claim = ContinualMoE.Cli.Sweeps.SweepClaim.TryAcquire(Path.Combine(folder, "claims", "ncm-seed1.lock"))!;
        var sweep = Task.Run(() => SweepCommand.Create().Parse([spec, "--output", folder]).Invoke());
        var deadline = DateTime.UtcNow.AddMinutes(3);
        string[] Events(string run) => SweepTestFiles.Attempts(folder).Where(a => a["run"]!.GetValue<string>() == run).Select(a => a["event"]!.GetValue<string>()).ToArray();
        while (!Events("ncm-seed2").Contains("completed") && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Thread.Sleep(2500);   // past one poll of the held claim
        Assert.False(sweep.IsCompleted, "the sweep ended while a run was held elsewhere");
        Assert.Empty(Events("ncm-seed1"));
        claim.Dispose();
        Assert.Equal(0, sweep.Wait(TimeSpan.FromMinutes(3)) ? sweep.Result : -1);
        Assert.Equal(["started", "completed"], Events("ncm-seed1"));
        Assert.Equal(["started", "completed"], Events("ncm-seed2"));
    }
}
