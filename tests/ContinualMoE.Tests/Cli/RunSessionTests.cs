using ContinualMoE.Cli.Commands;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Cli;

/// <summary>End-to-end runs through the CLI's run session on a small generated benchmark and a random-init nano ViT.</summary>
public class RunSessionTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-run-" + Guid.NewGuid().ToString("N"));

    private static RunConfig SmallRun(string method) => new RunConfig
    {
        Method = method,
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
    }.WithOverrides(method == "smope" ? ["method.alignment_epochs=2", "method.experts=6", "method.top_k=2"] : []);

    [Fact]
    public void RunWritesEveryResultFile()
    {
        var folder = Path.Combine(root, "run");
        Assert.Equal(0, RunSession.Start(SmallRun("smope"), folder, force: false, CancellationToken.None));
        foreach (var file in new[] { "config.json", "accuracy_matrix.csv", "metrics.json", "epochs.jsonl", "checkpoint.safetensors",
                     "accuracy_matrix.png", "average_accuracy.png", "experts_block0.png", "experts_block3.png" })
            Assert.True(File.Exists(Path.Combine(folder, file)), $"missing {file}");
        var matrix = AccuracyMatrix.FromCsv(File.ReadAllText(Path.Combine(folder, "accuracy_matrix.csv")));
        Assert.Equal(3, matrix.TaskCount);
        Assert.Equal(3, matrix.TasksTrained);
        var metrics = File.ReadAllText(Path.Combine(folder, "metrics.json"));
        Assert.Contains("\"trainable_parameters\"", metrics);
        Assert.Contains("\"final_average_accuracy\"", metrics);
        // An existing run folder is never overwritten without --force.
        var error = Assert.Throws<ContinualMoEException>(() => RunSession.Start(SmallRun("smope"), folder, force: false, CancellationToken.None));
        Assert.Contains("--force", error.Message);
    }

    [Fact]
    public void ResumedRunReproducesTheUninterruptedAccuracyMatrix()
    {
        var whole = Path.Combine(root, "whole");
        RunSession.Start(SmallRun("smope"), whole, force: false, CancellationToken.None);

        var interrupted = Path.Combine(root, "interrupted");
        using var stop = new CancellationTokenSource();
        var code = RunSession.Start(SmallRun("smope"), interrupted, force: false, stop.Token, taskFinished: task => { if (task == 0) stop.Cancel(); });
        Assert.Equal(130, code);
        var partial = AccuracyMatrix.FromCsv(File.ReadAllText(Path.Combine(interrupted, "accuracy_matrix.csv")));
        Assert.Equal(1, partial.TasksTrained);

        Assert.Equal(0, RunSession.Resume(interrupted, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(interrupted, "accuracy_matrix.csv")));
    }

    [Fact]
    public void ResumeWithADifferentConfigSaysWhichSettingsDiffer()
    {
        var folder = Path.Combine(root, "differ");
        using var stop = new CancellationTokenSource();
        RunSession.Start(SmallRun("finetune-head"), folder, force: false, stop.Token, taskFinished: _ => stop.Cancel());
        var error = Assert.Throws<ContinualMoEException>(() => RunSession.Resume(folder, null, ["epochs=7", "seed=9"], CancellationToken.None));
        Assert.Contains("epochs: 1 vs 7", error.Message);
        Assert.Contains("seed: 5 vs 9", error.Message);
    }

    [Fact]
    public void UnknownMethodAndDatasetListTheValidNames()
    {
        var method = Assert.Throws<ContinualMoEException>(() => RunSession.Start(SmallRun("finetune-head") with { Method = "nope" }, Path.Combine(root, "m"), false, CancellationToken.None));
        Assert.Contains("smope", method.Message);
        var dataset = Assert.Throws<ContinualMoEException>(() => RunSession.Start(SmallRun("finetune-head") with { Dataset = "nope" }, Path.Combine(root, "d"), false, CancellationToken.None));
        Assert.Contains("fashion-mnist", dataset.Message);
        Assert.False(Directory.Exists(Path.Combine(root, "m")), "a rejected run must not leave a folder behind");
    }

    [Fact]
    public void CorruptBackboneWeightsAreReportedBeforeAnyRunFolderIsMade()
    {
        Directory.CreateDirectory(root);
        var weights = Path.Combine(root, "broken.safetensors");
        File.WriteAllBytes(weights, [1, 2, 3]);
        var error = Assert.Throws<ContinualMoEException>(() =>
            RunSession.Start(SmallRun("ncm") with { BackboneWeights = weights }, Path.Combine(root, "w"), false, CancellationToken.None));
        Assert.StartsWith(weights, error.Message);
        Assert.False(Directory.Exists(Path.Combine(root, "w")));
    }

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }
}
