using ContinualMoE.Cli.Commands;
using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Cli;

/// <summary>SAMoE through the CLI's run session: the pool plots and table appear beside the usual results, and a run
/// resumed with a grown pool reproduces the uninterrupted one.</summary>
public class SamoeRunTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-samoe-" + Guid.NewGuid().ToString("N"));

    private static RunConfig SmallRun() => new RunConfig
    {
        Method = "samoe",
        Backbone = "vit_nano_patch4_32",
        BackboneWeights = null,
        Tasks = 3,
        Epochs = 1,
        BatchSize = 32,
        LearningRate = 0.01,
        GeneratedClasses = 6,
        GeneratedTrainPerClass = 24,
        GeneratedTestPerClass = 10,
        Seed = 5,
    }.WithOverrides(["method.alignment_epochs=2", "method.samples_per_expert=24"]);

    [Fact]
    public void RunWritesThePoolPlotsAndResumesWithAGrownPool()
    {
        var whole = Path.Combine(root, "whole");
        Assert.Equal(0, RunSession.Start(SmallRun(), whole, force: false, CancellationToken.None));
        foreach (var file in new[] { "expert_pool.png", "expert_usage.png", "task_similarity.png", "expert_pool.csv" })
            Assert.True(File.Exists(Path.Combine(whole, file)), $"missing {file}");
        var table = File.ReadAllLines(Path.Combine(whole, "expert_pool.csv"));
        Assert.Equal(4, table.Length);
        Assert.StartsWith("task,experts_added,active_experts,in_distribution,out_of_distribution,trainable_parameters", table[0]);

        var interrupted = Path.Combine(root, "interrupted");
        using var stop = new CancellationTokenSource();
        Assert.Equal(130, RunSession.Start(SmallRun(), interrupted, force: false, stop.Token, taskFinished: task => { if (task == 1) stop.Cancel(); }));
        Assert.Equal(0, RunSession.Resume(interrupted, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(interrupted, "accuracy_matrix.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "expert_pool.csv")), File.ReadAllText(Path.Combine(interrupted, "expert_pool.csv")));
        // The trainable parameters after each task survive the resume (checkpoint metadata) and match the pool table.
        long[] PerTask(string run) => System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement
            .GetProperty("trainable_parameters_after_task").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        Assert.Equal(table.Skip(1).Select(l => long.Parse(l.Split(',')[5], System.Globalization.CultureInfo.InvariantCulture)), PerTask(whole));
        Assert.Equal(PerTask(whole), PerTask(interrupted));
    }

    [Fact]
    public void OnADataScarceOverlappingScenarioEveryTrainingSampleIsJudgedOnceAndTheFirstTaskGrowsThePool()
    {
        var config = SmallRun() with { Scenario = ContinualMoE.Scenarios.ScenarioKinds.Overlap, Overlap = 0.5, Shots = 5 };
        using var experiment = Experiment.Build(config, backboneWeights: null);
        var results = experiment.Trainer().Run(experiment.Learner);
        Assert.Equal(3, results.Accuracy.TasksTrained);
        var history = ((ContinualMoE.Training.IExpertPoolGrowth)experiment.Learner).PoolHistory;
        Assert.Equal(3, history.Tasks.Count);
        for (var t = 0; t < 3; t++)
        {
            var task = experiment.Scenario.Tasks[t];
            Assert.Equal(5 * task.Classes.Count, task.Train.Count);   // exactly 5 shots per class
            Assert.Equal(task.Train.Count, history.Tasks[t].InDistribution + history.Tasks[t].OutOfDistribution);
        }
        Assert.True(history.Tasks[0].ExpertsAdded >= 1);
        Assert.Equal(0, history.Tasks[0].InDistribution);   // nothing exists to be in-distribution for
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        GC.SuppressFinalize(this);
    }
}
