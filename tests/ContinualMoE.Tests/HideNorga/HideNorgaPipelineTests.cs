using ContinualMoE.Methods;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.HideNorga;

public class HideNorgaPipelineTests
{
    private static float GradNorm(TorchSharp.Modules.Parameter p) => p.grad is null ? 0 : p.grad.abs().sum().item<float>();

    [Fact]
    public void GateLearnsInTheFirstTaskOnly()
    {
        var scenario = HideNorgaFixture.Scenario();
        var trainer = new ContinualTrainer(scenario, HideNorgaFixture.Data(), 3);
        using var norga = (HidePrompt)MethodRegistry.Create("norga", HideNorgaFixture.Context());
        var gate = norga.Prompts.Gate!;
        for (var t = 0; t < 2; t++)
        {
            var task = trainer.Context(t);
            norga.BeginTask(task);
            var wtp = norga.TrainingPhases(task).Single(p => p.Name == "wtp");
            var inPhase = wtp.Parameters.SelectMany(g => g.Parameters).Any(p => ReferenceEquals(p, gate.Scales));
            wtp.OnEpochStart!(0);
            gate.Scales.grad?.zero_();
            var batch = task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0).First();
            var output = wtp.Step(batch);
            (Losses.MaskedCrossEntropy(output.Logits!, batch.Labels, task.TaskClassMask) + output.AuxiliaryLoss!).backward();
            if (t == 0)
            {
                Assert.True(inPhase);
                Assert.True(gate.Trainable);
                Assert.True(GradNorm(gate.Scales) > 0);
            }
            else
            {
                Assert.False(inPhase);
                Assert.False(gate.Trainable);
                Assert.Equal(0, GradNorm(gate.Scales));
            }
            Assert.True(norga.Prompts.Prompts.grad!.select(2, t).abs().sum().item<float>() > 0);
            norga.Prompts.Prompts.grad!.zero_();
        }
    }

    [Fact]
    public void TapChangesOnlyTheHead()
    {
        var scenario = HideNorgaFixture.Scenario();
        var trainer = new ContinualTrainer(scenario, HideNorgaFixture.Data(), 3);
        using var norga = (HidePrompt)MethodRegistry.Create("norga", HideNorgaFixture.Context(settings: HideNorgaFixture.Settings(("tap_epochs", 3))));
        var task = trainer.Context(1);
        norga.BeginTask(trainer.Context(0));
        norga.BeginTask(task);
        using (no_grad())
            foreach (var c in task.SeenClasses)
                norga.PromptedStatistics.Set(c, randn(20, 24) + c);
        var before = norga.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        norga.RunTap(task);
        var after = norga.State();
        var changed = before.Keys.Where(k => !before[k].equal(after[k]).all().item<bool>()).ToList();
        Assert.NotEmpty(changed);
        Assert.All(changed, k => Assert.StartsWith("head.", k));
    }

    [Theory]
    [InlineData("hide-prompt")]
    [InlineData("norga")]
    public void TwoTaskRunEndToEndAboveChanceWithTaskIdentityReported(string method)
    {
        var scenario = HideNorgaFixture.Scenario();
        var trainer = new ContinualTrainer(scenario, HideNorgaFixture.Data(), 3);
        var settings = HideNorgaFixture.Settings(("tii_augment", false), ("tii_epochs", 8), ("tii_learning_rate", 0.01),
            ("tii_alignment_epochs", 5), ("tap_epochs", 5), ("tii_alignment_samples_per_class", 32), ("tap_samples_per_class", 32));
        using var learner = (HidePrompt)MethodRegistry.Create(method, HideNorgaFixture.Context(settings: settings, epochs: 3, rate: 0.01));
        Tensor? gateAfterFirst = null;
        var results = trainer.Run(learner, afterTask: (t, _) =>
        {
            if (t == 0 && learner.Prompts.Gate is { } g) gateAfterFirst = g.Scales.detach().clone();
        });
        Assert.True(results.HasTaskIdentity);
        var final = (results.Accuracy[0, 1] + results.Accuracy[1, 1]) / 2;
        Assert.True(final > 40, $"{method}: final average accuracy {final:F1}% on 4 classes (chance 25%)");
        if (gateAfterFirst is not null)
        {
            Assert.False(gateAfterFirst.equal(ones_like(gateAfterFirst)).all().item<bool>(), "the gate trains in task 1");
            Assert.True(gateAfterFirst.equal(learner.Prompts.Gate!.Scales).all().item<bool>(), "the gate is frozen after task 1 (TAP included)");
        }

        // The reported task-identity accuracy is the fraction of test samples routed to their true task.
        var data = HideNorgaFixture.Data();
        var seen = scenario.SeenClassMask(1);
        using var noGrad = no_grad();
        for (var i = 0; i < 2; i++)
        {
            long routed = 0, total = 0;
            foreach (var batch in data.Loader(scenario.Tasks[i].Test, augment: false, shuffle: false).Epoch(0))
            {
                using var prediction = learner.Predict(batch.Images, new EvaluationContext(2, seen, null, null));
                using var frozen = learner.TaskIdentity.Infer(FrozenCls(learner, batch.Images), seen).Tasks;
                Assert.True(prediction.PredictedTask!.equal(frozen).all().item<bool>());
                routed += prediction.PredictedTask!.eq((long)i).sum().item<long>();
                total += batch.Labels.shape[0];
                batch.Dispose();
            }
            Assert.Equal(100.0 * routed / total, results.TaskIdentity[i, 1], 6);
        }
    }

    private static Tensor FrozenCls(HidePrompt learner, Tensor images)
    {
        var backbone = (ContinualMoE.Backbones.VisionTransformer)typeof(LearnerBase)
            .GetProperty("Backbone", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(learner)!;
        using var output = backbone.ForwardFeatures(images);
        return output.Cls.clone();
    }
}
