using TorchSharp;
using ContinualMoE.Methods;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Baselines;

public class MethodTests
{
    private static void AssertNoBackboneGradient(MethodContext context) =>
        Assert.All(context.Backbone.parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));

    [Fact]
    public void L2PSelectsThePromptsWhoseKeysMatchTheFrozenQuery()
    {
        var context = BaselineFixture.Context();
        using var l2p = BaselineFixture.Create<L2P>("l2p", context);
        var images = BaselineFixture.Images(2);
        using (no_grad())
        {
            var query = context.Backbone.ForwardFeatures(images).Cls;          // [2, D]
            torch.random.manual_seed(1);
            var direction = query[0] - query[1];
            var noise = randn(10, 24) * 0.01 * direction.norm();
            // Keys 1, 3, 5, 7, 9 point towards image 0's query and away from image 1's, the others the opposite way.
            for (var m = 0; m < 10; m++) l2p.Keys[m].copy_((m % 2 == 1 ? direction : -direction) + noise[m]);
        }
        var selected = l2p.SelectForTest(images);
        Assert.Equal(new long[] { 1, 3, 5, 7, 9 }, selected[0].data<long>().ToArray().Order().ToArray());
        Assert.Equal(new long[] { 0, 2, 4, 6, 8 }, selected[1].data<long>().ToArray().Order().ToArray());
        Assert.Equal(2, l2p.Cost(1).BackbonePassesPerTestImage);
    }

    [Fact]
    public void L2PGradientsReachOnlySelectedPromptsAndNeverTheBackbone()
    {
        var context = BaselineFixture.Context();
        using var l2p = BaselineFixture.Create<L2P>("l2p", context);
        var images = BaselineFixture.Images(2);
        var selected = tensor(new long[,] { { 0, 2, 4, 6, 8 }, { 0, 2, 4, 6, 8 } });
        l2p.Forward(images, selected).sum().backward();
        AssertNoBackboneGradient(context);
        var grad = l2p.Prompts.grad!.abs().sum([1, 2]);
        for (var m = 0; m < 10; m++) Assert.Equal(m % 2 == 0, grad[m].item<float>() > 0);
    }

    [Fact]
    public void L2PPerSamplePromptsInOneBatchMatchOneByOne()
    {
        using var l2p = BaselineFixture.Create<L2P>("l2p", BaselineFixture.Context());
        using var noGrad = no_grad();
        var images = BaselineFixture.Images(2);
        var selected = tensor(new long[,] { { 0, 1, 2, 3, 4 }, { 9, 8, 7, 6, 5 } });
        var batched = l2p.Forward(images, selected);
        for (var i = 0; i < 2; i++)
            Assert.True(BaselineFixture.Close(batched.narrow(0, i, 1), l2p.Forward(images.narrow(0, i, 1), selected.narrow(0, i, 1)), 1e-4));
    }

    [Fact]
    public void BatchwiseVotingIsOptInAndVisibleInTheName()
    {
        using var plain = BaselineFixture.Create<L2P>("l2p", BaselineFixture.Context());
        Assert.Equal("l2p", plain.Name);
        var settings = new Dictionary<string, object> { ["batchwise_prompt"] = true };
        using var voting = BaselineFixture.Create<L2P>("l2p", BaselineFixture.Context(settings: settings));
        Assert.Contains("batch-wise", voting.Name);
        var selected = voting.SelectForTest(BaselineFixture.Images(4));
        for (var b = 1; b < 4; b++) Assert.True(selected[b].eq(selected[0]).all().item<bool>());
        using var dual = BaselineFixture.Create<DualPrompt>("dualprompt", BaselineFixture.Context(settings: settings));
        Assert.Contains("batch-wise", dual.Name);
        using var deep = BaselineFixture.Create<DeepL2P>("deep-l2p", BaselineFixture.Context(settings: settings));
        Assert.Contains("batch-wise", deep.Name);
    }

    [Fact]
    public void DualPromptTrainsTheTrueTasksEPromptAndPredictsTheTaskByKey()
    {
        var context = BaselineFixture.Context();
        using var dual = BaselineFixture.Create<DualPrompt>("dualprompt", context);
        var images = BaselineFixture.Images(3);
        dual.Forward(images, tensor(new long[,] { { 1 }, { 1 }, { 1 } })).sum().backward();
        AssertNoBackboneGradient(context);
        var eGrad = dual.EPrompts.grad!.abs().sum([0, 2, 3]);                 // per pool entry
        for (var m = 0; m < 10; m++) Assert.Equal(m == 1, eGrad[m].item<float>() > 0);
        Assert.True(dual.GPrompts.grad!.abs().sum().item<float>() > 0);
        using (no_grad())
        {
            var query = context.Backbone.ForwardFeatures(images).Cls;
            dual.Keys.copy_(-query.mean([0]).unsqueeze(0).expand(10, -1));
            dual.Keys[1].copy_(query[2]);
            var selected = dual.SelectForTest(images.narrow(0, 2, 1), tasksTrained: 2);
            Assert.Equal(1L, selected.item<long>());
            // Untrained tasks' keys are not candidates.
            Assert.Equal(0L, dual.SelectForTest(images.narrow(0, 2, 1), tasksTrained: 1).item<long>());
            // Per-sample E-prompts in one batch equal one by one.
            var rows = tensor(new long[,] { { 0 }, { 3 }, { 1 } });
            var batched = dual.Forward(images, rows);
            for (var i = 0; i < 3; i++)
                Assert.True(BaselineFixture.Close(batched.narrow(0, i, 1), dual.Forward(images.narrow(0, i, 1), rows.narrow(0, i, 1)), 1e-4));
        }
    }

    [Fact]
    public void CodaPromptDetachesOldComponentsAndUsesAllSeenOnesAtTest()
    {
        var context = BaselineFixture.Context(settings: new() { ["components"] = 6 });
        using var coda = BaselineFixture.Create<CodaPrompt>("coda-prompt", context);
        Assert.Equal(3, coda.ComponentsPerTask);
        var images = BaselineFixture.Images(2);
        var (logits, penalty) = coda.Forward(images, trainFrom: 3, end: 6, training: true);
        Assert.Null(penalty);
        logits.sum().backward();
        AssertNoBackboneGradient(context);
        var grad = coda.Components.grad!.abs().sum([0, 2, 3]);
        var keyGrad = coda.Keys.grad!.abs().sum([0, 2]);
        var attentionGrad = coda.Attention.grad!.abs().sum([0, 2]);
        for (var m = 0; m < 6; m++)
        {
            Assert.Equal(m >= 3, grad[m].item<float>() > 0);
            Assert.Equal(m >= 3, keyGrad[m].item<float>() > 0);
            Assert.Equal(m >= 3, attentionGrad[m].item<float>() > 0);
        }
        using (no_grad())
        {
            // Per-sample weights alpha differ per image; batched equals one by one.
            var batched = coda.Forward(images, 6, 6, false).Logits;
            for (var i = 0; i < 2; i++)
                Assert.True(BaselineFixture.Close(batched.narrow(0, i, 1), coda.Forward(images.narrow(0, i, 1), 6, 6, false).Logits, 1e-4));
        }
    }

    [Fact]
    public void DeepL2PPicksPerBlockTopKAndMatchesOneByOne()
    {
        var context = BaselineFixture.Context(settings: new() { ["pool_size"] = 8, ["top_k"] = 2, ["prompt_length"] = 4 });
        using var deep = BaselineFixture.Create<DeepL2P>("deep-l2p", context);
        var images = BaselineFixture.Images(3);
        using (no_grad())
        {
            var query = context.Backbone.ForwardFeatures(images).Cls;
            deep.Keys.copy_(-query[0].expand(3, 8, -1));
            deep.Keys[0, 5].copy_(query[0]);
            deep.Keys[0, 6].copy_(query[0] * 0.7 - query[1] * 0.3);
            var selected = deep.SelectForTest(images);
            Assert.Equal(new long[] { 5, 6 }, selected[0, 0].data<long>().ToArray());
            var batched = deep.Forward(images, training: false).Logits;
            for (var i = 0; i < 3; i++)
                Assert.True(BaselineFixture.Close(batched.narrow(0, i, 1), deep.Forward(images.narrow(0, i, 1), training: false).Logits, 1e-4));
        }
        var (logits, loss) = deep.Forward(images, training: true);
        (logits.sum() + loss!).backward();
        AssertNoBackboneGradient(context);
        Assert.True(deep.Keys.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void OvorOutliersLieFartherFromTheDataThanTheData()
    {
        torch.random.manual_seed(2);
        var features = randn(40, 24) + 3;
        var options = new Ovor.Options { Neighbours = 5, Select = 10, SampleFrom = 20, PerClass = 10, Sigma = 1.0 };
        var outliers = Ovor.VirtualOutliers.Generate(features, classCount: 2, options);
        Assert.Equal(new long[] { 20, 24 }, outliers.shape);
        var normed = nn.functional.normalize(features, p: 2, dim: 1);
        var idDistance = Ovor.VirtualOutliers.KthDistance(normed, normed, 5).median();
        var oodDistance = Ovor.VirtualOutliers.KthDistance(nn.functional.normalize(outliers, p: 2, dim: 1), normed, 5).median();
        Assert.True(oodDistance.item<float>() > idDistance.item<float>());
        // The energy loss is zero when in-distribution energies are low and outlier energies high.
        var confident = tensor(new float[,] { { 30, 0 } });
        var flat = tensor(new float[,] { { -10, -10 } });
        Assert.Equal(0f, Ovor.VirtualOutliers.Loss(confident, flat, new Ovor.Options()).item<float>());
        Assert.True(Ovor.VirtualOutliers.Loss(flat, confident, new Ovor.Options()).item<float>() > 0);
    }

    [Fact]
    public void SharedPromptHasSmopesSizeAndOnePass()
    {
        var context = BaselineFixture.Context();
        using var shared = BaselineFixture.Create<SharedPrompt>("shared-prompt", context);
        // Tiny backbone: 3 blocks x 3 heads x 25 pairs x head width 8, keys and values, plus a 24x4 head.
        Assert.Equal(3 * 3 * 25 * 8 * 2 + 24 * 4 + 4, shared.Cost(2).TrainableParameters);
        Assert.Equal(1, shared.Cost(2).BackbonePassesPerTestImage);
        using var prediction = shared.Predict(BaselineFixture.Images(2), BaselineFixture.Evaluation(1));
        prediction.Logits.sum().backward();
        AssertNoBackboneGradient(context);
        Assert.True(shared.Values.grad!.abs().sum().item<float>() > 0);
    }
}
