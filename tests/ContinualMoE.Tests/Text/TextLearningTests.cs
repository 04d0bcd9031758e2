using ContinualMoE.Data.Text;
using ContinualMoE.Experiments;
using ContinualMoE.Training;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Text;

/// <summary>Issue 12: the text training path must learn, not only run. Through the LoRA learner's own training phase
/// (its parameter groups, Adam, the causal-LM loss of <c>LanguageModelReadout</c>) on a tiny random GPT-2: every adapted
/// site's LoRA receives a gradient and is stepped, and the loss on one fixed batch keeps falling when it is overfitted.</summary>
public class TextLearningTests : IDisposable
{
    private readonly TempDirectory gpt2 = TextTaskTests.ModelFolder("gpt2");

    public void Dispose() => gpt2.Dispose();

    [Fact]
    public void SeqLoraStepsEveryAdapterAndOverfitsOneTextBatch()
    {
        var config = TextTaskTests.TinyTextRun("seq-lora", gpt2.Path) with { Tasks = 1 };
        using var experiment = Experiment.Build(config, backboneWeights: null);
        var context = experiment.Trainer().Context(0, experiment.Learner);
        experiment.Learner.BeginTask(context);
        var phase = experiment.Learner.TrainingPhases(context)[0];
        using var optimizer = Optimizers.Create(phase.Parameters, phase.Optimizer);
        var trainable = phase.Parameters.SelectMany(g => g.Parameters).ToList();
        Assert.NotEmpty(trainable);
        var start = trainable.Select(p => p.detach().clone()).ToList();
        using var batch = new TextDataLoader((ITextDataset)context.Train, 8, shuffle: false, seed: 1).Epoch(0).First();
        Assert.True(batch.TargetMask!.any().item<bool>());
        var losses = new List<float>();
        for (var step = 0; step < 40; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = phase.Step(batch).AuxiliaryLoss!;
            losses.Add(loss.item<float>());
            loss.backward();
            if (step == 0)
                // LoRA's B starts at zero, so at the first step A's gradient is zero and B's (the up-projection's) is not.
                Assert.All(trainable.Where(p => p.shape[1] == new ContinualMoE.Methods.LoraOptions().Rank), p => Assert.True(p.grad!.abs().sum().item<float>() > 0));
            Optimizers.ClipAndStep(optimizer, trainable, phase.Optimizer);
        }
        for (var i = 0; i < trainable.Count; i++)
            Assert.False(trainable[i].equal(start[i]).all().item<bool>(), $"LoRA parameter {i} was not stepped");
        Assert.True(losses[^1] < 0.5 * losses[0], $"loss on one batch {losses[0]} -> {losses[^1]} after 40 steps");
        Assert.True(losses.Skip(30).Average() < losses.Skip(10).Take(10).Average(), "loss stopped falling");
        foreach (var t in start) t.Dispose();
    }
}
