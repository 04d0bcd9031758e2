using ContinualMoE.Backbones;
using ContinualMoE.Cli.Commands;
using ContinualMoE.Evaluation;
using ContinualMoE.Experiments;
using ContinualMoE.LowRank;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Baselines;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.LowRank;

public class SetaTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "cmoe-seta-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        GC.SuppressFinalize(this);
    }

    private static Dictionary<string, object> Small(params (string Key, object Value)[] extra)
    {
        var settings = new Dictionary<string, object> { ["shared_rank"] = 2, ["shared_capacity"] = 4, ["unique_rank"] = 1, ["split_capacity"] = 2, ["alignment_epochs"] = 2 };
        foreach (var (k, v) in extra) settings[k] = v;
        return settings;
    }

    [Fact]
    public void AnchoringIsZeroAtTheAnchorQuadraticInTheDisplacementAndLinearInTheImportance()
    {
        var p = new Parameter(tensor(new float[] { 1, 2, 3, 4 }));
        using var anchor = new ElasticAnchor(() => [p]);
        // Squared gradients [1, 4, 0, 9]: the third number matters to no task.
        (p * tensor(new float[] { 1, 2, 0, 3 })).sum().backward();
        anchor.AccumulateSquaredGradients();
        anchor.CommitTask();
        Assert.Equal(0f, anchor.Penalty().item<float>());
        float PenaltyAt(float[] displacement)
        {
            using (no_grad()) p.copy_(anchor.Anchor[0] + tensor(displacement));
            return anchor.Penalty().item<float>();
        }
        var one = PenaltyAt([0.1f, 0.1f, 0, 0.1f]);
        var two = PenaltyAt([0.2f, 0.2f, 0, 0.2f]);
        Assert.Equal(4.0, two / one, 4);
        // Importance normalised to mean 1 over the four numbers: [1, 4, 0, 9] / 3.5.
        Assert.Equal((1 + 4 + 9) / 3.5 * 0.01, one, 4);
        Assert.Equal(0f, PenaltyAt([0, 0, 5, 0]));
        // A second task with the same Fisher doubles the importance and so the penalty (anchor moved to the current value).
        using (no_grad()) p.copy_(anchor.Anchor[0]);
        p.grad!.zero_();
        (p * tensor(new float[] { 1, 2, 0, 3 })).sum().backward();
        anchor.AccumulateSquaredGradients();
        anchor.CommitTask();
        Assert.Equal(2 * one, PenaltyAt([0.1f, 0.1f, 0, 0.1f]), 4);
    }

    [Fact]
    public void GateGrowsOneOutputPerTaskWithoutChangingOldOutputs()
    {
        torch.random.manual_seed(1);
        using var gate = new GaussianTaskGate(classes: 6, dim: 5, tasks: 3);
        for (var c = 0; c < 4; c++) gate.AddClass(c, c / 2, randn(10, 5) + c);
        var features = randn(7, 5) + 1;
        var before = gate.Logits(features);
        Assert.True(before[.., 2].isinf().all().item<bool>());
        gate.AddClass(4, 2, randn(10, 5) - 3);
        gate.AddClass(5, 2, randn(10, 5) - 4);
        var after = gate.Logits(features);
        Assert.True(after.narrow(1, 0, 2).equal(before.narrow(1, 0, 2)).all().item<bool>());
        Assert.True(after[.., 2].isfinite().all().item<bool>());
        // Features drawn near a class of task 2 are routed to task 2.
        Assert.True(gate.Logits(randn(20, 5) * 0.5 - 3).argmax(-1).eq(2).all().item<bool>());
    }

    [Fact]
    public void SplitOnShareMovesSingleOwnerComponentsTheNewTaskDoesNotUse()
    {
        using var vit = BaselineFixture.Backbone();
        var sites = LowRankSites.Select(vit, ["v"], [0], "test");
        using var experts = new SplitOnShareExperts(sites, tasks: 3,
            new SplitOnShareSettings(SharedRank: 4, SharedCapacity: 6, UniqueRank: 1, SplitCapacity: 2, Alpha: 4,
                OwnershipThreshold: 0.5, ShareThreshold: 0.5, MinFreeComponents: 1, GrowShared: true));
        using (no_grad()) experts.Pool.Up(0).normal_();
        experts.BeginTask(0);
        // Task 0 uses components 0 and 1, task 1 components 1 and 2; component 3 is used by nobody.
        experts.EndTask(0, tensor(new float[,] { { 4, 4, 0, 0, 0, 0 } }));
        experts.BeginTask(1);
        experts.EndTask(1, tensor(new float[,] { { 0, 4, 4, 0, 0, 0 } }));
        var component0 = experts.Pool.Up(0).narrow(1, 0, 1).clone();
        experts.BeginTask(2);
        // Task 2's data excites only component 2: component 0 (task 0's alone) is split off, 1 (shared) stays,
        // 2 (task 1's but used by task 2) stays.
        var (split, grown) = experts.SplitAndGrow(2, tensor(new float[,] { { 0, 0, 4, 0, 0, 0 } }));
        Assert.Equal(1, split);
        Assert.True(experts.Unique(0).IsSlotActive(0, 1));
        Assert.True(experts.Unique(0).Up(0).narrow(1, 1, 1).equal(component0).all().item<bool>());
        Assert.Equal(0f, experts.Pool.Up(0).narrow(1, 0, 1).abs().sum().item<float>());   // renewed: no effect
        Assert.False(experts.Unique(1).IsSlotActive(0, 1));
        // Components 0 (renewed) and 3 are free, so no growth was needed.
        Assert.Equal(0, grown);
        Assert.Equal(4, experts.Pool.ActiveSlots(0));
        Assert.True(experts.Bank.IsFrozen(1) && experts.Bank.IsFrozen(2));
    }

    [Fact]
    public void FrozenUniqueExpertsGetExactlyZeroGradientOnLaterTasks()
    {
        using var seta = BaselineFixture.Create<Seta>("seta", BaselineFixture.Context(settings: Small()));
        Tensor? firstTaskUnique = null;
        BaselineFixture.RunTwoTasks(seta, task =>
        {
            if (task == 0) firstTaskUnique = seta.Experts.Unique(0).Up(0).narrow(1, 0, 1).clone();
        });
        // Trained during task 0 (non-zero), untouched by task 1.
        Assert.True(firstTaskUnique!.abs().sum().item<float>() > 0);
        Assert.True(seta.Experts.Unique(0).Up(0).narrow(1, 0, 1).equal(firstTaskUnique).all().item<bool>());
        // A forward pass that uses the frozen expert gives it no gradient; the pool gets one.
        var bank = seta.Experts.Bank;
        bank.SampleWeights = seta.Experts.ExpertWeights(tensor(new float[,] { { 1, 1 } }));
        using (var output = BaselineFixture.Backbone().ForwardFeatures(BaselineFixture.Images(2), new VitForwardOptions { Adapters = bank }))
            output.Cls.square().sum().backward();
        bank.SampleWeights = null;
        Assert.All(seta.Experts.Unique(0).Parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.Contains(seta.Experts.Pool.Parameters(), p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
    }

    [Theory]
    [InlineData("gaussian", true)]
    [InlineData("uniform", true)]
    [InlineData("gaussian", false)]
    public void EveryAblationRunsAndReportsItsCost(string gate, bool split)
    {
        using var seta = BaselineFixture.Create<Seta>("seta", BaselineFixture.Context(settings: Small(("gate", gate), ("split", split))));
        var accuracy = BaselineFixture.RunTwoTasks(seta);
        Assert.InRange(accuracy, 0, 100);
        var cost = seta.Cost(2);
        Assert.Equal(split && gate == "gaussian" ? 2 : 1, cost.BackbonePassesPerTestImage);
        Assert.Equal(2, seta.ParametersAfterTask.Count);
        // Sub-linear growth: below two tasks' own experts of the same capacity.
        Assert.True(seta.ParametersAfterTask[^1] < 2 * seta.OneTaskExpertParameters);
        if (!split) Assert.All(seta.Experts.ComponentsPerSite(), c => Assert.Equal(0, c.Unique));
        else Assert.All(seta.Experts.ComponentsPerSite(), c => Assert.True(c.Unique >= 2));
    }

    [Fact]
    public void GateAccuracyIsReportedAndTheOracleIsPerfect()
    {
        using var seta = BaselineFixture.Create<Seta>("seta", BaselineFixture.Context(settings: Small(("gate", "oracle"))));
        var (scenario, data) = BaselineFixture.Scenario();
        var results = new ContinualTrainer(scenario, data, seed: 4).Run(seta);
        Assert.True(results.HasTaskIdentity);
        Assert.Equal(100, results.TaskIdentity[0, 1]);
        Assert.Equal(100, results.TaskIdentity[1, 1]);
    }

    [Fact]
    public void ResumedRunReproducesTheUninterruptedAccuracyMatrix()
    {
        RunConfig Config() => new RunConfig
        {
            Method = "seta", Backbone = "vit_nano_patch4_32", BackboneWeights = null, Tasks = 2, Epochs = 1, BatchSize = 32,
            LearningRate = 0.01, GeneratedClasses = 4, GeneratedTrainPerClass = 16, GeneratedTestPerClass = 8, Seed = 5,
        }.WithOverrides(["method.shared_rank=2", "method.shared_capacity=4", "method.unique_rank=1", "method.alignment_epochs=2"]);
        var whole = Path.Combine(root, "whole");
        Assert.Equal(0, RunSession.Start(Config(), whole, force: false, CancellationToken.None));
        var interrupted = Path.Combine(root, "interrupted");
        using var stop = new CancellationTokenSource();
        Assert.Equal(130, RunSession.Start(Config(), interrupted, force: false, stop.Token, taskFinished: task => { if (task == 0) stop.Cancel(); }));
        Assert.Equal(0, RunSession.Resume(interrupted, null, [], CancellationToken.None));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv")), File.ReadAllText(Path.Combine(interrupted, "accuracy_matrix.csv")));
        var metrics = File.ReadAllText(Path.Combine(whole, "metrics.json"));
        Assert.Equal(AccuracyMatrix.FromCsv(File.ReadAllText(Path.Combine(whole, "accuracy_matrix.csv"))).TasksTrained, 2);
        Assert.Contains("\"trainable_parameters\"", metrics);
        Assert.True(File.Exists(Path.Combine(whole, "parameter_growth.png")));
        Assert.True(File.Exists(Path.Combine(whole, "shared_unique_components.png")));
    }
}
