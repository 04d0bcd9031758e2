using ContinualMoE.Data;
using ContinualMoE.Methods;
using ContinualMoE.Prompts;
using ContinualMoE.Scenarios;
using ContinualMoE.Tests.Baselines;
using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Methods;

/// <summary>
/// SAMoE on hand-built task streams over 4 generated classes (the tiny unit-gain ViT of the baseline tests): task A has
/// classes {0, 1} as dark images, task B classes {2, 3} as bright ones (the random test backbone does not tell generated
/// classes apart by their class token, but it does tell brightness); a stream may repeat A (seen data again), bring B
/// (novel) or both at once (overlap).
/// </summary>
public class SamoeTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Classes = 4;

    private sealed class Stream : IDisposable
    {
        public required ClassIncrementalScenario Scenario { get; init; }
        public required DataSource Data { get; init; }
        public required Samoe Learner { get; init; }
        private readonly List<int[]> classesSoFar = [];
        public IImageDataset A { get; } = null!;
        public IImageDataset B { get; } = null!;

        [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
        public Stream(ClassIncrementalScenario scenario, DataSource data, Samoe learner)
        {
            Scenario = scenario; Data = data; Learner = learner;
            A = new Tinted((IImageDataset)scenario.Tasks[0].Train, 0.25, 0);
            B = new Tinted((IImageDataset)scenario.Tasks[1].Train, 0.25, 191);
        }

        /// <summary>The context of task <paramref name="index"/> holding <paramref name="train"/> (labels are global).</summary>
        public TaskContext Context(int index, IImageDataset train, int taskCount = 4)
        {
            var classes = Enumerable.Range(0, train.Count).Select(train.GetLabel).Distinct().Order().ToArray();
            classesSoFar.Add(classes);
            var mask = Enumerable.Range(0, Classes).Select(c => classes.Contains(c)).ToArray();
            var seen = Enumerable.Range(0, Classes).Select(c => classesSoFar.Any(s => s.Contains(c))).ToArray();
            return new TaskContext(index, taskCount, Classes, classes, mask, seen, train, [train], Data, CPU, 100 + index);
        }

        /// <summary>Begin and end a task without the training epochs (routing and growth do not depend on them).</summary>
        public Samoe.TaskRouting Visit(TaskContext context, Action<Samoe.TaskRouting>? during = null)
        {
            Learner.BeginTask(context);
            var routing = Learner.CurrentRouting!;
            // EndTask frees the routing; keep a copy.
            var summary = routing with
            {
                Experts = routing.Experts.clone(), Weights = routing.Weights.clone(), Trainable = routing.Trainable.clone(),
                InDistribution = routing.InDistribution.clone(), CountsInMoments = routing.CountsInMoments.clone(), Top1Similarity = routing.Top1Similarity.clone(),
            };
            during?.Invoke(routing);
            Learner.EndTask(context);
            return summary;
        }

        public void Dispose() => Learner.Dispose();
    }

    private static Stream NewStream(Dictionary<string, object>? settings = null, int taskCount = 4)
    {
        var (scenario, data) = BaselineFixture.Scenario();
        var values = new Dictionary<string, object> { ["alignment_epochs"] = 2, ["samples_per_expert"] = 24 };
        foreach (var (k, v) in settings ?? []) values[k] = v;
        var learner = (Samoe)MethodRegistry.Create("samoe", BaselineFixture.Context(taskCount, Classes, values, epochs: 1, rate: 0.01));
        return new Stream(scenario, data, learner);
    }

    private static int[] CreatedAt(Samoe samoe) =>
        samoe.Pool.CreatedAtTask.data<long>().Select(x => (int)x).Where(x => x >= 0).ToArray();

    [Fact]
    public void PoolGrowsOnANovelTaskAndNotOnATaskThatRepeatsSeenData()
    {
        using var stream = NewStream();
        var first = stream.Learner.PoolHistory;
        Assert.Empty(first.Tasks);
        stream.Visit(stream.Context(0, stream.A));
        var afterA = stream.Learner.Pool.ActiveCount;
        Assert.True(afterA >= 1, "the first task must create experts");

        stream.Visit(stream.Context(1, stream.A));                  // the same samples again
        Assert.Equal(afterA, stream.Learner.Pool.ActiveCount);

        stream.Visit(stream.Context(2, stream.B));                  // novel classes
        var history = stream.Learner.PoolHistory;
        output.WriteLine(string.Join("; ", history.Tasks.Select(t => $"task {t.Task}: +{t.ExpertsAdded}, in {t.InDistribution}, out {t.OutOfDistribution}")));
        Assert.True(stream.Learner.Pool.ActiveCount > afterA, "a novel task must add experts");
        Assert.Equal(0, history.Tasks[1].ExpertsAdded);
        Assert.True(history.Tasks[1].InDistribution > 0.9 * stream.A.Count);
        Assert.True(history.Tasks[2].OutOfDistribution > history.Tasks[2].InDistribution);
        Assert.Equal([0, 1, 2], history.Tasks.Select(t => t.Task));
        // Repeating A uses exactly A's experts; B uses others.
        Assert.Equal(1.0, history.TaskSimilarity[0, 1], 6);
        Assert.True(history.TaskSimilarity[0, 2] < 0.5);
        Assert.True(history.Tasks[2].TrainableParameters > history.Tasks[0].TrainableParameters);
    }

    [Fact]
    public void MomentsFromTheCreatingTaskStayFixedWhenALaterTaskReusesTheExpert()
    {
        double[] CountsAfterRepeat(bool fromCreatingTask)
        {
            using var stream = NewStream(new() { ["moments_from_creating_task"] = fromCreatingTask });
            stream.Visit(stream.Context(0, stream.A));
            var afterCreation = stream.Learner.Pool.Moments.Count.clone();
            stream.Visit(stream.Context(1, stream.A));                  // reuses A's experts
            var active = stream.Learner.Pool.ActiveCount;
            var grown = stream.Learner.Pool.Moments.Count.narrow(0, 0, active) - afterCreation.narrow(0, 0, active);
            return grown.data<double>().ToArray();
        }
        Assert.All(CountsAfterRepeat(fromCreatingTask: true), c => Assert.Equal(0.0, c));
        Assert.True(CountsAfterRepeat(fromCreatingTask: false).Sum() >= 1, "by default a reusing task widens the moments");
    }

    [Fact]
    public void AnOutOfDistributionSampleGivesExactlyZeroGradientToOldExperts()
    {
        using var stream = NewStream(new() { ["reuse_rate"] = 0.5 });
        stream.Visit(stream.Context(0, stream.A));
        var oldCount = stream.Learner.Pool.ActiveCount;
        // One task that overlaps: A's samples again plus B's novel ones.
        var mixed = new ConcatDataset([stream.A, stream.B]);
        var context = stream.Context(1, mixed);
        stream.Learner.BeginTask(context);
        var routing = stream.Learner.CurrentRouting!;
        Assert.True(routing.ExpertsAdded > 0);
        var inDistribution = routing.InDistribution.data<bool>().ToArray();
        var step = stream.Learner.TrainingPhases(context).Single().Step;
        var old = stream.Learner.Pool.Prompts.Take(oldCount).ToList();

        Tensor Gradient(bool wantInDistribution)
        {
            var rows = Enumerable.Range(0, mixed.Count).Where(i => inDistribution[i] == wantInDistribution).Take(4).ToArray();
            Assert.Equal(4, rows.Length);
            using var batch = Batch(stream.Data, mixed, rows);
            foreach (var p in stream.Learner.Pool.Prompts) p.grad?.zero_();
            var output = step(batch);
            Losses.MaskedCrossEntropy(output.Logits!, batch.Labels, context.TaskClassMask).backward();
            return stack(old.Select(p => p.grad is null ? tensor(0f) : p.grad.abs().sum()).ToArray()).sum();
        }

        Assert.Equal(0.0, Gradient(wantInDistribution: false).item<float>());          // exactly zero
        Assert.True(Gradient(wantInDistribution: true).item<float>() > 0);             // reuse does reach them
        stream.Learner.EndTask(context);
    }

    [Fact]
    public void WithoutMaskingAnOutOfDistributionSampleMayTrainOldExperts()
    {
        // The masking switch changes which experts a sample may use: with it off, OOD samples route over the whole pool.
        using var stream = NewStream(new() { ["instance_masking"] = false });
        stream.Visit(stream.Context(0, stream.A));
        var oldCount = stream.Learner.Pool.ActiveCount;
        var routing = stream.Visit(stream.Context(1, new ConcatDataset([stream.A, stream.B])));
        Assert.True(routing.Trainable.all().item<bool>());
        Assert.Contains(routing.ReusedTrained, m => m < oldCount);
    }

    [Fact]
    public void AFullPoolStopsGrowingAndKeepsOutOfDistributionSamplesAwayFromOldExperts()
    {
        using var stream = NewStream(new() { ["max_experts"] = 1 });
        stream.Visit(stream.Context(0, stream.A));
        var routing = stream.Visit(stream.Context(1, stream.B));
        Assert.Equal(1, stream.Learner.Pool.ActiveCount);
        Assert.Equal(0, routing.ExpertsAdded);
        var ood = routing.InDistribution.logical_not();
        Assert.True(ood.any().item<bool>());
        Assert.False(routing.Trainable.masked_select(ood).any().item<bool>());   // they borrow the old prompt detached
    }

    [Fact]
    public void FixedPoolAblationAllocatesEveryExpertOnTheFirstTask()
    {
        using var stream = NewStream(new() { ["incremental_pool"] = false, ["max_experts"] = 5 });
        stream.Visit(stream.Context(0, stream.A));
        Assert.Equal(5, stream.Learner.Pool.ActiveCount);
        stream.Visit(stream.Context(1, stream.B));
        Assert.Equal(5, stream.Learner.Pool.ActiveCount);
        Assert.All(CreatedAt(stream.Learner), t => Assert.Equal(0, t));
    }

    [Fact]
    public void NewKeysAreCentroidsAndNewPromptsAreOrthogonalToOldOnes()
    {
        using var stream = NewStream(new() { ["orthogonal_keys"] = true });
        stream.Visit(stream.Context(0, stream.A));
        var oldCount = stream.Learner.Pool.ActiveCount;
        stream.Learner.BeginTask(stream.Context(1, stream.B));
        var pool = stream.Learner.Pool;
        var active = pool.ActiveCount;
        Assert.True(active > oldCount);
        var keys = pool.Keys.narrow(0, 0, active);
        var keyGram = keys.matmul(keys.t());
        Assert.True(keyGram.narrow(0, oldCount, active - oldCount).narrow(1, 0, oldCount).abs().max().item<float>() < 1e-4f);
        var prompts = stack(pool.Prompts.Take(active).Select(p => p.detach().reshape(-1)).ToArray());
        var promptGram = prompts.matmul(prompts.t());
        Assert.True(promptGram.narrow(0, oldCount, active - oldCount).narrow(1, 0, oldCount).abs().max().item<float>() < 1e-4f);
        stream.Learner.EndTask(stream.Context(1, stream.B));
    }

    [Fact]
    public void ClassStatisticsOfAClassSeenAgainAreMerged()
    {
        using var stream = NewStream(new() { ["classifier_alignment"] = false });
        stream.Visit(stream.Context(0, stream.A));
        var once = stream.Learner.State()["statistics.counts"].clone();
        stream.Visit(stream.Context(1, stream.A));
        var twice = stream.Learner.State()["statistics.counts"];
        Assert.True(once.sum().item<double>() > 0);
        Assert.True(twice.equal(once * 2).all().item<bool>());
    }

    [Fact]
    public void StateRoundTripRestoresAGrownPool()
    {
        using var stream = NewStream();
        stream.Visit(stream.Context(0, stream.A));
        stream.Visit(stream.Context(1, stream.B));
        var state = stream.Learner.State().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var restored = (Samoe)MethodRegistry.Create("samoe", BaselineFixture.Context(4, Classes,
            new() { ["alignment_epochs"] = 2, ["samples_per_expert"] = 24 }, epochs: 1, rate: 0.01));
        Assert.Equal(0, restored.Pool.ActiveCount);
        restored.LoadState(state);
        Assert.Equal(stream.Learner.Pool.ActiveCount, restored.Pool.ActiveCount);
        Assert.Equal(stream.Learner.PoolHistory.Tasks, restored.PoolHistory.Tasks);
        using var images = BaselineFixture.Images(6);
        using var noGrad = no_grad();
        using var a = stream.Learner.Predict(images, BaselineFixture.Evaluation(2, Classes));
        using var b = restored.Predict(images, BaselineFixture.Evaluation(2, Classes));
        Assert.True(a.Logits.equal(b.Logits).all().item<bool>());
        // The restored pool routes the next task exactly as the original does.
        var next = stream.Context(2, new ConcatDataset([stream.A, stream.B]));
        stream.Learner.BeginTask(next);
        restored.BeginTask(next);
        Assert.True(stream.Learner.CurrentRouting!.Experts.equal(restored.CurrentRouting!.Experts).all().item<bool>());
        Assert.Equal(stream.Learner.Pool.ActiveCount, restored.Pool.ActiveCount);
    }

    [Fact]
    public void TwoTasksAboveChanceWithTheTrainer()
    {
        using var learner = MethodRegistry.Create("samoe", BaselineFixture.Context(2, Classes,
            new() { ["alignment_epochs"] = 5, ["samples_per_expert"] = 24 }, epochs: 3, rate: 0.01));
        var accuracy = BaselineFixture.RunTwoTasks(learner);
        output.WriteLine($"samoe: {accuracy:F1}%");
        Assert.True(accuracy > 35, $"samoe final average accuracy {accuracy:F1}% is not above chance (25%)");
        var cost = learner.Cost(2);
        Assert.Equal(2, cost.BackbonePassesPerTestImage);
        Assert.Equal(2, ((Samoe)learner).PoolHistory.Tasks.Count);
    }

    [Theory]
    [InlineData("top_k", 0, "top_k")]
    [InlineData("prompt_length", 3, "prompt_length")]
    [InlineData("reuse_rate", 2.0, "reuse_rate")]
    [InlineData("ood_threshold", -1.0, "ood_threshold")]
    [InlineData("min_novel_share", 1.5, "min_novel_share")]
    [InlineData("max_experts", 0, "max_experts")]
    public void BadSettingsGetOneLineErrors(string key, object value, string named)
    {
        var error = Assert.Throws<ContinualMoEException>(() =>
            MethodRegistry.Create("samoe", BaselineFixture.Context(2, Classes, new() { [key] = value })));
        Assert.Contains(named, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void SphericalKMeansSeparatesTwoDirections()
    {
        var a = tensor(new float[] { 1, 0, 0 }).expand(5, 3) + randn(5, 3) * 0.01;
        var b = tensor(new float[] { 0, 1, 0 }).expand(4, 3) + randn(4, 3) * 0.01;
        var (centroids, assignment) = ExpertPromptPool.SphericalKMeans(cat([a, b], 0), 2, 10);
        var labels = assignment.data<long>().ToArray();
        Assert.All(labels.Take(5), l => Assert.Equal(labels[0], l));
        Assert.All(labels.Skip(5), l => Assert.Equal(labels[5], l));
        Assert.NotEqual(labels[0], labels[5]);
        Assert.True(centroids.norm(1).sub(1).abs().max().item<float>() < 1e-5f);
    }

    /// <summary>A dataset's images with pixels mapped to offset + scale * p (same labels).</summary>
    private sealed class Tinted(IImageDataset inner, double scale, int offset) : IImageDataset
    {
        public string Name => $"{inner.Name}-tinted{offset}";
        public int Count => inner.Count;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public int GetLabel(int index) => inner.GetLabel(index);
        public RawImage GetImage(int index)
        {
            var image = inner.GetImage(index);
            return image with { Pixels = image.Pixels.Select(p => (byte)(offset + scale * p)).ToArray() };
        }
    }

    private static Batch Batch(DataSource data, IImageDataset dataset, int[] rows)
    {
        var images = new List<Tensor>();
        var labels = new List<long>();
        foreach (var batch in data.Loader(dataset, augment: false, shuffle: false).Epoch(0))
        {
            using (batch)
            {
                for (var r = 0; r < batch.Indices.Length; r++)
                    if (rows.Contains(batch.Indices[r])) { images.Add(batch.Images[r].clone()); labels.Add(batch.Labels[r].item<long>()); }
            }
        }
        var ordered = rows.Order().ToArray();
        return new Batch(stack(images), tensor(labels.ToArray()), ordered);
    }
}
