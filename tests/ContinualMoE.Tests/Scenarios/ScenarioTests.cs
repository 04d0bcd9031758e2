using ContinualMoE.Data;
using ContinualMoE.Scenarios;

namespace ContinualMoE.Tests.Scenarios;

/// <summary>Shots, overlap and blurry scenarios (docs/scenarios.md): exact counts and fractions, determinism, errors.</summary>
public class ScenarioTests
{
    /// <summary>perClass samples of each class (train and test), interleaved by class.</summary>
    private static DatasetSplits Dataset(int classes, int perClass, int testPerClass = 2)
    {
        IImageDataset Make(string name, int count)
        {
            var labels = Enumerable.Range(0, classes * count).Select(i => i % classes).ToArray();
            var pixels = labels.Select(l => (byte)l).ToArray();
            return new InMemoryImageDataset(name, Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray(), 1, 1, 1, pixels, labels, planar: false);
        }
        return new DatasetSplits(Make("train", perClass), Make("test", testPerClass));
    }

    private static ContinualScenario Build(DatasetSplits data, int tasks, int seed = 7, string kind = ScenarioKinds.ClassIncremental,
        int? shots = null, double overlap = 0, double blurry = 0, int? first = null) =>
        ContinualScenario.Create(data, new ScenarioSettings
        {
            Kind = kind, Tasks = tasks, Seed = seed, Shots = shots, Overlap = overlap, Blurry = blurry, FirstTaskClasses = first,
        });

    private static int[] Indices(ILabelledDataset set) => Enumerable.Range(0, set.Count).Select(((Subset)set).InnerIndex).ToArray();

    [Fact]
    public void ClassIncrementalKindKeepsEveryImageOfEachTasksClassesInDatasetOrder()
    {
        var data = Dataset(10, 6);
        var scenario = Build(data, 3);
        var legacy = ClassIncrementalScenario.Create(data, 3, seed: 7);
        Assert.Equal(ScenarioKinds.ClassIncremental, scenario.Kind);
        var train = new RelabeledDataset(data.Train, scenario.ClassOrder);
        foreach (var task in scenario.Tasks)
        {
            var expected = Enumerable.Range(0, train.Count).Where(i => task.Classes.Contains(train.GetLabel(i))).ToArray();
            Assert.Equal(expected, Indices(task.Train));
            Assert.Equal(Indices(legacy.Tasks[task.Index].Train), Indices(task.Train));
            Assert.Equal(Indices(legacy.Tasks[task.Index].Test), Indices(task.Test));
            Assert.Equal(task.Classes, task.TestClasses);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(10)]
    public void ShotsGiveExactlyNImagesPerClassPerTaskDrawnFromTheSeed(int shots)
    {
        var data = Dataset(8, 12);
        var scenario = Build(data, 4, shots: shots);
        foreach (var task in scenario.Tasks)
        {
            var labels = task.Train.Labels();
            Assert.All(task.Classes, c => Assert.Equal(shots, labels.Count(l => l == c)));
            Assert.Equal(task.Classes.Count * shots, task.Train.Count);
            Assert.Equal(task.Classes.Count * 2, task.Test.Count);   // test sets are never cut
        }
        Assert.Equal(scenario.Tasks.Select(t => Indices(t.Train)), Build(data, 4, shots: shots).Tasks.Select(t => Indices(t.Train)));
        // Which images of a class are drawn depends on the seed (original class 0's images here).
        int[] ImagesOfOriginalClass0(ContinualScenario s) =>
            s.Tasks.SelectMany(t => Indices(t.Train)).Where(i => data.Train.GetLabel(i) == 0).Order().ToArray();
        Assert.NotEqual(ImagesOfOriginalClass0(scenario), ImagesOfOriginalClass0(Build(data, 4, seed: 8, shots: shots)));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.25)]
    [InlineData(0.5)]
    [InlineData(0.75)]
    [InlineData(1.0)]
    public void OverlapPutsExactlyRoundRhoTimesSizeEarlierClassesInEachLaterTask(double rho)
    {
        var data = Dataset(20, 12);
        var scenario = Build(data, 4, kind: ScenarioKinds.Overlap, overlap: rho);
        var seen = new HashSet<int>(scenario.Tasks[0].Classes);
        for (var t = 1; t < scenario.TaskCount; t++)
        {
            var classes = scenario.Tasks[t].Classes;
            var repeated = classes.Count(seen.Contains);
            Assert.Equal((int)Math.Round(rho * classes.Count, MidpointRounding.AwayFromZero), repeated);
            seen.UnionWith(classes);
        }
        Assert.Equal(20, seen.Count);   // every class enters
        // Labels are global: a class in several tasks has disjoint, fresh images in each, and all its images are used.
        var all = scenario.Tasks.SelectMany(t => Indices(t.Train)).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Equal(data.Train.Count, all.Count);
        for (var c = 0; c < 20; c++)
        {
            var tasks = scenario.TasksOfClass(c);
            Assert.Equal(scenario.Tasks.Where(t => t.Classes.Contains(c)).Select(t => t.Index), tasks);
            Assert.All(tasks, t => Assert.InRange(scenario.Tasks[t].Train.Labels().Count(l => l == c), 12 / tasks.Count, 12 / tasks.Count + 1));
        }
        // A task's test set is the test images of all its classes (a repeated class counts in every task that has it).
        Assert.All(scenario.Tasks, t => Assert.Equal(t.Classes.Count * 2, t.Test.Count));
        if (rho == 1.0) Assert.All(scenario.Tasks, t => Assert.Equal(20, t.Classes.Count));
        if (rho == 0.0) Assert.Equal(new[] { 5, 5, 5, 5 }, scenario.Tasks.Select(t => t.Classes.Count));
    }

    [Fact]
    public void OverlapWithShotsGivesNFreshImagesPerClassPerTaskAndIsDeterministic()
    {
        var data = Dataset(12, 30);
        var a = Build(data, 3, kind: ScenarioKinds.Overlap, overlap: 0.5, shots: 5);
        var b = Build(data, 3, kind: ScenarioKinds.Overlap, overlap: 0.5, shots: 5);
        var c = Build(data, 3, seed: 99, kind: ScenarioKinds.Overlap, overlap: 0.5, shots: 5);
        foreach (var task in a.Tasks)
        {
            var labels = task.Train.Labels();
            Assert.All(task.Classes, k => Assert.Equal(5, labels.Count(l => l == k)));
        }
        var all = a.Tasks.SelectMany(t => Indices(t.Train)).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Contains(Enumerable.Range(0, 12), k => a.TasksOfClass(k).Count > 1);
        Assert.Equal(a.Tasks.Select(t => t.Classes), b.Tasks.Select(t => t.Classes));
        Assert.Equal(a.Tasks.Select(t => Indices(t.Train)), b.Tasks.Select(t => Indices(t.Train)));
        Assert.NotEqual(a.Tasks.SelectMany(t => Indices(t.Train)), c.Tasks.SelectMany(t => Indices(t.Train)));
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.3)]
    public void BlurryTasksHaveExactlyTheFractionOfOtherTasksImages(double fraction)
    {
        var data = Dataset(10, 20);
        var plain = Build(data, 5);
        var scenario = Build(data, 5, kind: ScenarioKinds.Blurry, blurry: fraction);
        var all = scenario.Tasks.SelectMany(t => Indices(t.Train)).ToList();
        Assert.Equal(data.Train.Count, all.Count);
        Assert.Equal(all.Count, all.Distinct().Count());
        foreach (var task in scenario.Tasks)
        {
            var size = plain.Tasks[task.Index].Train.Count;
            Assert.Equal(size, task.Train.Count);
            var labels = task.Train.Labels();
            var foreign = labels.Count(l => !task.TestClasses.Contains(l));
            Assert.Equal((int)Math.Round(fraction * size, MidpointRounding.AwayFromZero), foreign);
            Assert.All(task.TestClasses, c => Assert.Contains(c, labels));              // every own class keeps images
            Assert.Equal(labels.Distinct().Order(), task.Classes);                          // the logit mask covers every trained class
            Assert.Equal(plain.Tasks[task.Index].Classes, task.TestClasses);
            Assert.Equal(Indices(plain.Tasks[task.Index].Test), Indices(task.Test));
        }
        Assert.Equal(scenario.Tasks.Select(t => Indices(t.Train)), Build(data, 5, kind: ScenarioKinds.Blurry, blurry: fraction).Tasks.Select(t => Indices(t.Train)));
    }

    [Fact]
    public void MasksAndTasksOfClassFollowTheTasksClassLists()
    {
        var scenario = Build(Dataset(12, 6), 3, kind: ScenarioKinds.Overlap, overlap: 0.5);
        for (var t = 0; t < 3; t++)
        {
            Assert.Equal(Enumerable.Range(0, 12).Select(c => scenario.Tasks[t].Classes.Contains(c)), scenario.ClassMask(t));
            Assert.Equal(Enumerable.Range(0, 12).Select(c => scenario.Tasks.Take(t + 1).Any(x => x.Classes.Contains(c))), scenario.SeenClassMask(t));
        }
        var alone = scenario.Alone(2);
        Assert.Equal(1, alone.TaskCount);
        Assert.Equal(scenario.Tasks[2].Classes, alone.Tasks[0].Classes);
        Assert.Equal(0, alone.Tasks[0].Index);
    }

    [Theory]
    [InlineData(20, 4, 0.5, new[] { 8, 8, 8, 8 })]
    [InlineData(20, 4, 0.25, new[] { 7, 7, 6, 6 })]
    [InlineData(10, 3, 0.0, new[] { 4, 3, 3 })]
    [InlineData(10, 3, 1.0, new[] { 10, 10, 10 })]
    public void TaskLayoutIntroducesEveryClassOnce(int classes, int tasks, double rho, int[] sizes)
    {
        var layout = ContinualScenario.TaskLayout(classes, tasks, overlap: rho);
        Assert.Equal(sizes, layout.Sizes);
        Assert.Equal(classes, layout.Sizes.Zip(layout.Repeated, (s, r) => s - r).Sum());
    }

    [Theory]
    [InlineData("overlap", 1.5, 0, null, 5, "overlap (rho) must be between 0 and 1")]
    [InlineData("overlap", -0.1, 0, null, 5, "overlap (rho) must be between 0 and 1")]
    [InlineData("class-incremental", 0.3, 0, null, 5, "needs scenario \"overlap\"")]
    [InlineData("blurry", 0, 1.0, null, 5, "blurry fraction must be at least 0 and below 1")]
    [InlineData("class-incremental", 0, 0, 7, 5, "shots 7 is more than the 6 training images class")]
    [InlineData("overlap", 1.0, 0, 4, 2, "shots 4 is more than the 3 training images class")]
    [InlineData("class-incremental", 0, 0, 0, 5, "shots must be at least 1")]
    [InlineData("class-incremental", 0, 0, null, 11, "task count 11 must be between 1 and the number of classes (10)")]
    [InlineData("overlap", 0.3, 0, null, 12, "task 11 would have no classes")]
    [InlineData("shuffled", 0, 0, null, 5, "scenario 'shuffled' is unknown")]
    public void BadSettingsGetOneLineErrors(string kind, double overlap, double blurry, int? shots, int tasks, string message)
    {
        var error = Assert.Throws<ContinualMoEException>(() => Build(Dataset(10, 6), tasks, kind: kind, overlap: overlap, blurry: blurry, shots: shots));
        Assert.Contains(message, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }
}
