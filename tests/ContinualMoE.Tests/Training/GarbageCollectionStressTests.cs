using ContinualMoE.Tests.Baselines;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

/// <summary>
/// TorchSharp hands libtorch the handle of a temporary Scalar (e.g. the alpha of <c>a + b</c>) while the managed object is
/// already unreachable, so a collection on another thread can free it mid-call (docs/known-issues.md). With every hot
/// path on cached or held Scalars, collections running all the time must not change a single bit of training.
/// </summary>
public class GarbageCollectionStressTests
{
    [Fact]
    public void CollectionsOnAnotherThreadDoNotChangeTraining()
    {
        var quiet = RunSmope();
        using var stop = new CancellationTokenSource();
        var collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                collections++;
            }
        }) { IsBackground = true };
        collector.Start();
        var stressed = new List<(double[] Accuracy, Dictionary<string, Tensor> State)>();
        try
        {
            // A freed Scalar is read only in a window of microseconds: several runs give the collections more chances.
            for (var run = 0; run < 3; run++) stressed.Add(RunSmope());
        }
        finally { stop.Cancel(); collector.Join(); }
        Assert.True(collections > 10, $"only {collections} collections ran during training");
        foreach (var (accuracy, state) in stressed)
        {
            Assert.Equal(quiet.Accuracy, accuracy);
            Assert.Equal(quiet.State.Keys.Order(), state.Keys.Order());
            foreach (var (name, tensor) in quiet.State)
                Assert.True(tensor.equal(state[name]).all().item<bool>(), $"state '{name}' differs after training under collections");
        }
    }

    /// <summary>A 2-task SMoPE run (forward, backward, optimiser, end-of-task statistics, alignment, evaluation); its
    /// accuracies and every tensor of its final state.</summary>
    private static (double[] Accuracy, Dictionary<string, Tensor> State) RunSmope()
    {
        using var learner = BaselineFixture.Create<IContinualLearner>("smope", BaselineFixture.Context(epochs: 2,
            settings: new() { ["alignment_epochs"] = 3 }));
        var (scenario, data) = BaselineFixture.Scenario();
        var results = new ContinualTrainer(scenario, data, seed: 4).Run(learner);
        var state = learner.State().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        return ([results.Accuracy[0, 0], results.Accuracy[0, 1], results.Accuracy[1, 1]], state);
    }
}
