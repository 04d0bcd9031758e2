using ContinualMoE.Cli.Commands;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Scenarios;

namespace ContinualMoE.Tests.Scenarios;

/// <summary>Every method on data-scarce overlapping and blurry scenarios, resume, and the scenario metrics in metrics.json.</summary>
public class ScenarioRunTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-scenario-run-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    /// <summary>6 generated classes of 4 training and 2 test images, 3 tasks, nano ViT: seconds per method.</summary>
    private static RunConfig Small(string method, string scenario, double overlap = 0, double blurry = 0, int? shots = 1) => new RunConfig
    {
        Method = method, Backbone = "vit_nano_patch4_32", BackboneWeights = null, Tasks = 3, Epochs = 1, BatchSize = 16,
        LearningRate = 0.01, GeneratedClasses = 6, GeneratedTrainPerClass = 4, GeneratedTestPerClass = 2, Seed = 5,
        Scenario = scenario, Overlap = overlap, Blurry = blurry, Shots = shots,
    }.WithOverrides(method == "smope" ? ["method.alignment_epochs=1", "method.alignment_samples_per_class=8", "method.experts=6", "method.top_k=2"] :
        method is "hide-prompt" or "norga" ? ["method.tii_epochs=1", "method.tii_alignment_epochs=1", "method.tap_epochs=1", "method.tii_alignment_samples_per_class=8", "method.tap_samples_per_class=8"] : []);

    [Fact]
    public void EveryMethodRunsOnADataScarceOverlappingScenario()
    {
        foreach (var method in MethodRegistry.Names)
        {
            using var experiment = Experiment.Build(Small(method, ScenarioKinds.Overlap, overlap: 0.5), backboneWeights: null);
            Assert.Contains(Enumerable.Range(0, 6), c => experiment.Scenario.TasksOfClass(c).Count > 1);
            var results = experiment.Trainer().Run(experiment.Learner);
            Assert.Equal(3, results.Accuracy.TasksTrained);
            for (var i = 0; i < 3; i++) Assert.InRange(results.Accuracy[i, 2], 0, 100);
            if (results.HasTaskIdentity) Assert.InRange(results.TaskIdentity[2, 2], 0, 100);
        }
    }

    [Theory]
    [InlineData("smope")]
    [InlineData("hide-prompt")]
    [InlineData("ncm")]
    public void StatisticsMethodsRunOnABlurryScenario(string method)
    {
        using var experiment = Experiment.Build(Small(method, ScenarioKinds.Blurry, blurry: 0.25, shots: 3), backboneWeights: null);
        Assert.All(experiment.Scenario.Tasks, t => Assert.True(t.Classes.Count > t.TestClasses.Count));
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.Equal(3, results.Accuracy.TasksTrained);
    }

    [Fact]
    public void ResumedOverlappingRunReproducesTheUninterruptedOne()
    {
        var config = Small("smope", ScenarioKinds.Overlap, overlap: 0.5);
        var whole = Path.Combine(root, "whole");
        Assert.Equal(0, RunSession.Start(config, whole, force: false, CancellationToken.None));
        var interrupted = Path.Combine(root, "interrupted");
        using var stop = new CancellationTokenSource();
        Assert.Equal(130, RunSession.Start(config, interrupted, force: false, stop.Token, taskFinished: task => { if (task == 0) stop.Cancel(); }));
        Assert.Equal(0, RunSession.Resume(interrupted, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(interrupted, "accuracy_matrix.csv")));
        var metrics = File.ReadAllText(Path.Combine(whole, "metrics.json"));
        Assert.Contains("\"overlapping_class_accuracy\"", metrics);
        Assert.Contains("\"scenario\": \"overlap\"", metrics);
    }

    [Fact]
    public void ForwardTransferComparesEachTaskWithTheTaskTrainedAlone()
    {
        var folder = Path.Combine(root, "fwt");
        Assert.Equal(0, RunSession.Start(Small("ncm", ScenarioKinds.Overlap, overlap: 0.5) with { ForwardTransfer = true }, folder, false, CancellationToken.None));
        var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "metrics.json")));
        var fwt = json.RootElement.GetProperty("scenario").GetProperty("forward_transfer");
        var perTask = fwt.GetProperty("per_task").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(3, perTask.Length);
        Assert.Equal(0, perTask[0], 9);   // task 0 alone is the same one-task run as the sequence's first task
        Assert.Equal(perTask.Skip(1).Average(), fwt.GetProperty("mean").GetDouble(), 9);
    }

    [Fact]
    public void ForwardTransferFormula()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 90, 100); a.Record(0, 1, 80, 100); a.Record(1, 1, 70, 100);
        a.Record(0, 2, 60, 100); a.Record(1, 2, 50, 100); a.Record(2, 2, 85, 100);
        var fwt = ForwardTransfer.Compute(a, [90, 60, 95]);
        Assert.Equal(new[] { 90.0, 70, 85 }, fwt.AfterLearning);
        Assert.Equal(new[] { 0.0, 10, -10 }, fwt.PerTask);
        Assert.Equal(0, fwt.Mean!.Value, 9);
    }

    [Fact]
    public void BadScenarioSettingsFailBeforeTheRunFolderIsMade()
    {
        var folder = Path.Combine(root, "bad");
        var error = Assert.Throws<ContinualMoEException>(() => RunSession.Start(Small("ncm", ScenarioKinds.Overlap, overlap: 1.2), folder, false, CancellationToken.None));
        Assert.Contains("overlap (rho) must be between 0 and 1", error.Message);
        Assert.False(Directory.Exists(folder));
    }
}
