using System.Text.Json;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Experiments;

namespace ContinualMoE.Tests.Cli;

/// <summary>A compare trains a forward-transfer reference that several methods share (plain LoRA alone) once.</summary>
public class ForwardTransferReferenceTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-fwt-reference-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    /// <summary>4 generated classes of 8 training and 4 test images, 2 tasks, nano ViT, forward transfer on.</summary>
    private static RunConfig Small(string method, params string[] overrides) => new RunConfig
    {
        Method = method, Backbone = "vit_nano_patch4_32", BackboneWeights = null, Tasks = 2, Epochs = 1, BatchSize = 8,
        LearningRate = 0.01, GeneratedClasses = 4, GeneratedTrainPerClass = 8, GeneratedTestPerClass = 4, Seed = 7, ForwardTransfer = true,
    }.WithOverrides(overrides);

    /// <summary>The run's forward transfer: the task-alone accuracies and the per-task transfer.</summary>
    private (double[] Alone, double[] PerTask) Run(RunConfig config, string name, TaskAloneReferences? references)
    {
        var folder = Path.Combine(root, name);
        Assert.Equal(0, RunSession.Start(config, folder, force: false, CancellationToken.None, references: references));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "metrics.json")));
        var fwt = json.RootElement.GetProperty("scenario").GetProperty("forward_transfer");
        double[] Values(string property) => fwt.GetProperty(property).EnumerateArray().Select(e => e.GetDouble()).ToArray();
        return (Values("alone"), Values("per_task"));
    }

    [Fact]
    public void MethodsSharingTheirTaskAloneLearnerTrainItOnceWithTheValuesOfSeparateRuns()
    {
        var references = new TaskAloneReferences();
        var sequential = Run(Small("seq-lora"), "seq-lora", references);
        Assert.Equal(2, references.Trained);
        var ewc = Run(Small("ewc-lora"), "ewc-lora", references);
        var orthogonal = Run(Small("o-lora"), "o-lora", references);
        Assert.Equal(2, references.Trained);   // plain LoRA alone, trained for seq-lora, reused by the other two
        Assert.Equal(4, references.Reused);
        Assert.Equal(sequential.Alone, ewc.Alone);
        Assert.Equal(sequential.Alone, orthogonal.Alone);

        // Each equals what the method computes without the compare's references.
        var ewcAlone = Run(Small("ewc-lora"), "ewc-lora-separate", null);
        Assert.Equal(ewcAlone.Alone, ewc.Alone);
        Assert.Equal(ewcAlone.PerTask, ewc.PerTask);
        var orthogonalAlone = Run(Small("o-lora"), "o-lora-separate", null);
        Assert.Equal(orthogonalAlone.Alone, orthogonal.Alone);
        Assert.Equal(orthogonalAlone.PerTask, orthogonal.PerTask);

        // What changes the learner alone gets its own reference: O-LoRA's L2 term, another rank for one method.
        Run(Small("o-lora", "method.l2=0.5"), "o-lora-l2", references);
        Assert.Equal(4, references.Trained);
        Run(Small("ewc-lora", "method.ewc-lora={\"rank\": 2}"), "ewc-lora-rank-2", references);
        Assert.Equal(6, references.Trained);
        Assert.Equal(4, references.Reused);
    }
}
