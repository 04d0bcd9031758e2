using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Tests.Baselines;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.LowRank;

public class InfLoraMoclTests
{
    private static Dictionary<string, object> Small() => new() { ["rank"] = 2 };

    [Fact]
    public void RegistryListsBothMethods()
    {
        Assert.Contains("inflora", MethodRegistry.Names);
        Assert.Contains("mocl", MethodRegistry.Names);
    }

    [Fact]
    public void InfLoraDefaultsAreTheOfficialOnes()
    {
        using var inflora = BaselineFixture.Create<InfLora>("inflora", BaselineFixture.Context());
        // k and v of the 3 blocks at rank 10; k and v read the same input, so one memory per block.
        Assert.Equal(6, inflora.Bank.Sites.Count);
        Assert.All(inflora.Bank.Sites, s => Assert.Contains(s.Site.Layer, new[] { LinearLayers.Key, LinearLayers.Value }));
        Assert.Equal(10, inflora.Bank[0].Rank);
        Assert.Equal(3, inflora.Memory.Inputs);
        Assert.Equal(0.95, inflora.ThresholdOf(0), 12);
        Assert.Equal(0.975, inflora.ThresholdOf(1), 12);
    }

    [Fact]
    public void InfLoraTrainsOnlyUpProjectionsAndTheNewTasksUpdateStaysOutOfTheOldInputSpace()
    {
        using var inflora = BaselineFixture.Create<InfLora>("inflora", BaselineFixture.Context(settings: Small()));
        var oldSpace = new List<Tensor>();
        var downs = new List<Tensor>();
        Tensor? firstUp = null;
        var accuracy = BaselineFixture.RunTwoTasks(inflora, task =>
        {
            if (task != 0) return;
            for (var g = 0; g < inflora.Memory.Inputs; g++) oldSpace.Add(inflora.Memory.OldSpaceProjector(g).to(float32));
            downs.AddRange(Enumerable.Range(0, inflora.Bank.Sites.Count).Select(s => inflora.Bank[0].Down(s).clone()));
            firstUp = inflora.Bank[0].Up(0).clone();
        });
        Assert.InRange(accuracy, 0, 100);
        for (var s = 0; s < inflora.Bank.Sites.Count; s++)
        {
            var old = oldSpace[inflora.InputOfSite(s)];
            var dim = old.shape[0];
            var oldDimension = old.trace().item<float>();
            Assert.InRange(oldDimension, 0.5f, dim - 0.5f);   // a proper subspace is stored
            // Reduction matrices are designed, never trained: task 0's are unchanged, rows of norm 1/sqrt(3).
            Assert.True(inflora.Bank[0].Down(s).equal(downs[s]).all().item<bool>());
            Assert.True(BaselineFixture.Close(inflora.Bank[0].Down(s).norm(1), full(2, 1 / MathF.Sqrt(3)), 1e-5));
            // Task 1's whole update B_1 A_1 annihilates the old input space; task 0's (which lives there) does not.
            var newDelta = inflora.Bank[1].DenseDelta(s);
            var newNorm = newDelta.norm().item<float>();
            Assert.True(newNorm > 0);
            Assert.True(newDelta.matmul(old).norm().item<float>() < 1e-5 * newNorm + 1e-7, $"site {s}: the new update touches the old space");
            var oldDelta = inflora.Bank[0].DenseDelta(s);
            Assert.True(oldDelta.matmul(old).norm().item<float>() > 0.1 * oldDelta.norm().item<float>());
        }
        Assert.True(inflora.Bank[0].Up(0).equal(firstUp!).all().item<bool>());
        Assert.Equal(2, inflora.Memory.TasksStored);
        // Trained numbers: the up-projections of both tasks (out x rank per site) and the head.
        var ups = 2 * inflora.Bank.Sites.Sum(s => s.OutFeatures * 2);
        Assert.Equal(ups + 24 * 4 + 4, inflora.Cost(2).TrainableParameters);
        Assert.Equal(1, inflora.Cost(2).BackbonePassesPerTestImage);
    }

    [Fact]
    public void FrozenExpertsGetExactlyZeroGradient()
    {
        using var inflora = BaselineFixture.Create<InfLora>("inflora", BaselineFixture.Context(settings: Small()));
        using var mocl = BaselineFixture.Create<Mocl>("mocl", BaselineFixture.Context(settings: Small()));
        BaselineFixture.RunTwoTasks(inflora);
        BaselineFixture.RunTwoTasks(mocl);
        using var vit = BaselineFixture.Backbone();
        using var images = BaselineFixture.Images(3);
        // Gradients left over from the last training step are not what this test is about.
        foreach (var p in inflora.Bank.parameters().Concat(mocl.Bank.parameters()).Concat([mocl.Key(0), mocl.Key(1)])) p.grad?.zero_();

        // InfLoRA: with task 1's expert trainable again, a loss through both experts reaches only task 1's B.
        inflora.Bank.Freeze(1, false);
        foreach (var p in Enumerable.Range(0, inflora.Bank.Sites.Count).Select(s => inflora.Bank[1].Down(s))) p.requires_grad = false;
        using (var output = vit.ForwardFeatures(images, new VitForwardOptions { Adapters = inflora.Bank }))
            output.Cls.square().sum().backward();
        Assert.All(inflora.Bank[0].Parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.True(inflora.Bank[1].Up(0).grad!.abs().sum().item<float>() > 0);
        Assert.All(Enumerable.Range(0, inflora.Bank.Sites.Count), s => Assert.Null(inflora.Bank[1].Down(s).grad));

        // MoCL: the same for the experts and for the keys of the router.
        mocl.Bank.Freeze(1, false);
        mocl.Key(1).requires_grad = true;
        using (var queries = vit.ForwardFeatures(images).Cls.detach())
        {
            mocl.Bank.SampleWeights = mocl.Weights(mocl.Cosine(queries, 2));
            using (var output = vit.ForwardFeatures(images, new VitForwardOptions { Adapters = mocl.Bank }))
                output.Cls.square().sum().backward();
            mocl.Bank.SampleWeights = null;
        }
        Assert.All(mocl.Bank[0].Parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.True(mocl.Key(0).grad is null || mocl.Key(0).grad!.abs().sum().item<float>() == 0);
        Assert.True(mocl.Bank[1].Up(0).grad!.abs().sum().item<float>() > 0);
        Assert.True(mocl.Key(1).grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void MoclMixesSeenExpertsPerInputAndReportsTheChosenTask()
    {
        using var mocl = BaselineFixture.Create<Mocl>("mocl", BaselineFixture.Context(settings: Small()));
        Tensor? firstKey = null;
        var (scenario, data) = BaselineFixture.Scenario();
        var results = new ContinualTrainer(scenario, data, seed: 4).Run(mocl, afterTask: (t, _) => { if (t == 0) firstKey = mocl.Key(0).clone(); });
        Assert.True(results.HasTaskIdentity);
        Assert.InRange(results.TaskIdentity[1, 1], 0, 100);
        // Old keys stay where their task left them; the new key was trained.
        Assert.True(mocl.Key(0).equal(firstKey!).all().item<bool>());
        Assert.True(mocl.Bank.IsFrozen(0) && mocl.Bank.IsFrozen(1));
        // Weights: a softmax over the seen tasks only, per input.
        using var cosine = tensor(new float[,] { { 1f, 0f }, { 0f, 1f } });
        using var weights = mocl.Weights(cosine);
        Assert.Equal([2L, 2L], weights.shape);
        Assert.True(BaselineFixture.Close(weights.sum(1), ones(2)));
        Assert.True(weights[0, 0].item<float>() > 0.99f && weights[1, 1].item<float>() > 0.99f);   // scale 8: e^8 : 1
        var cost = mocl.Cost(2);
        Assert.Equal(2, cost.BackbonePassesPerTestImage);
        Assert.Equal(2 * cost.ParametersAddedPerTask + 24 * 4 + 4, cost.TrainableParameters);
    }
}
