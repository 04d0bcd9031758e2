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
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        GC.SuppressFinalize(this);
    }
}
