using ContinualMoE.Methods;
using ContinualMoE.Tests.Baselines;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.LowRank;

public class LoraBaselineTests
{
    private static Dictionary<string, object> Small() => new() { ["rank"] = 2 };

    [Fact]
    public void OLoraFreezesEachTasksLoraAndPenalisesOverlapWithEarlierOnes()
    {
        using var olora = BaselineFixture.Create<OLora>("o-lora", BaselineFixture.Context(settings: Small()));
        Tensor? first = null;
        BaselineFixture.RunTwoTasks(olora, task => { if (task == 0) first = olora.Bank[0].Up(0).clone(); });
        Assert.True(first!.abs().sum().item<float>() > 0);
        Assert.True(olora.Bank[0].Up(0).equal(first).all().item<bool>());
        Assert.True(olora.Bank.IsFrozen(0) && olora.Bank.IsFrozen(1) && olora.Bank.IsActive(1));
        // Growth: one LoRA per task.
        Assert.Equal(2 * olora.Cost(2).ParametersAddedPerTask, olora.Bank.ActiveParameterCount());
        // The orthogonality loss vanishes for orthogonal input subspaces and not otherwise.
        Assert.True(olora.OrthogonalityLoss(1).item<float>() > 0);
        using (no_grad())
            for (var s = 0; s < olora.Bank.Sites.Count; s++)
            {
                var a = olora.Bank[0].Down(s);
                a.zero_();
                a[0, 0] = tensor(1f);
                olora.Bank[1].Down(s).narrow(1, 0, 1).zero_();
            }
        Assert.Equal(0f, olora.OrthogonalityLoss(1).item<float>());
    }

    [Fact]
    public void EwcLoraAnchorsAfterTheFirstTask()
    {
        using var ewc = BaselineFixture.Create<EwcLora>("ewc-lora", BaselineFixture.Context(settings: Small()));
        var penaltyAfterFirst = 0f;
        BaselineFixture.RunTwoTasks(ewc, task => { if (task == 0) penaltyAfterFirst = ewc.Anchor.Penalty().item<float>(); });
        Assert.Equal(0f, penaltyAfterFirst);   // the anchor is the trained value
        Assert.True(ewc.Anchor.Importance.Sum(t => t.sum().item<float>()) > 0);
        Assert.Equal(1, ewc.Cost(2).BackbonePassesPerTestImage);
    }

    [Theory]
    [InlineData("seq-lora")]
    [InlineData("joint-lora")]
    public void SingleAdapterBaselinesTrainTheirLora(string method)
    {
        using var learner = BaselineFixture.Create<LoraLearner>(method, BaselineFixture.Context(settings: Small()));
        var accuracy = BaselineFixture.RunTwoTasks(learner);
        Assert.InRange(accuracy, 0, 100);
        Assert.True(learner.Bank[0].Up(0).abs().sum().item<float>() > 0);
        // One LoRA whatever the task count: rank x (in + out) at each of the 3 blocks' q and v.
        Assert.Equal(3 * 2 * 2 * (24 + 24), learner.Bank.ActiveParameterCount());
    }
}
