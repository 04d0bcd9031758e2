using ContinualMoE.Data;
using ContinualMoE.Scenarios;

namespace ContinualMoE.Tests.Scenarios;

public class ClassIncrementalScenarioTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cmoe-scenario-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>perClass samples of each class; a sample's single pixel stores its original label, so remapping can be checked.</summary>
    private static DatasetSplits Dataset(int classes, int perClass)
    {
        IImageDataset Make(string name)
        {
            var labels = Enumerable.Range(0, classes * perClass).Select(i => i % classes).ToArray();
            var pixels = labels.Select(l => (byte)l).ToArray();
            return new InMemoryImageDataset(name, Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray(), 1, 1, 1, pixels, labels, planar: false);
        }
        return new DatasetSplits(Make("train"), Make("test"));
    }

    [Fact]
    public void TasksPartitionClassesAndSamplesCompletelyAndDisjointly()
    {
        var data = Dataset(10, 3);
        var scenario = ClassIncrementalScenario.Create(data, taskCount: 3, seed: ClassOrder.PaperSeed);
        Assert.Equal(new[] { 4, 3, 3 }, scenario.Tasks.Select(t => t.Classes.Count));
        Assert.Equal(Enumerable.Range(0, 10), scenario.Tasks.SelectMany(t => t.Classes));
        Assert.Equal(30, scenario.Tasks.Sum(t => t.Train.Count));
        Assert.Equal(30, scenario.Tasks.Sum(t => t.Test.Count));
        foreach (var task in scenario.Tasks)
        {
            Assert.All(task.Train.Labels(), l => Assert.Contains(l, task.Classes));
            Assert.All(task.Test.Labels(), l => Assert.Contains(l, task.Classes));
            Assert.Equal(task.Classes.Count * 3, task.Train.Count);
            Assert.Equal(10, task.Train.ClassNames.Count);
            Assert.All(task.Classes, c => Assert.Equal(task.Index, scenario.TaskOfClass(c)));
        }
        Assert.Equal(new[] { false, false, false, false, true, true, true, false, false, false }, scenario.ClassMask(1));
        Assert.Equal(Enumerable.Range(0, 10).Select(c => c < 7), scenario.SeenClassMask(1));
        Assert.False(scenario.TaskIncremental);
    }

    [Fact]
    public void LabelsAreRemappedToPositionInClassOrder()
    {
        var scenario = ClassIncrementalScenario.Create(Dataset(6, 2), taskCount: 2, seed: 5);
        var order = scenario.ClassOrder;
        Assert.Equal(ClassOrder.Random(6, 5), order);
        foreach (var task in scenario.Tasks)
            for (var i = 0; i < task.Train.Count; i++)
            {
                var label = task.Train.GetLabel(i);
                var original = ((IImageDataset)task.Train).GetImage(i).Pixels[0];
                Assert.Equal(order[label], original);
                Assert.Equal(original, scenario.OriginalClass(label));
                Assert.Equal($"class{original}", scenario.OriginalClassName(label));
                Assert.Equal($"class{original}", task.Train.ClassNames[label]);
            }
    }

    [Fact]
    public void SameSeedSameScenarioDifferentSeedDifferentOrder()
    {
        var data = Dataset(20, 1);
        var a = ClassIncrementalScenario.Create(data, 4, seed: 1993);
        var b = ClassIncrementalScenario.Create(data, 4, seed: 1993);
        var c = ClassIncrementalScenario.Create(data, 4, seed: 1994);
        Assert.Equal(a.ClassOrder, b.ClassOrder);
        Assert.Equal(a.Tasks[2].Train.Labels(), b.Tasks[2].Train.Labels());
        Assert.NotEqual(a.ClassOrder, c.ClassOrder);
        Assert.Equal(Enumerable.Range(0, 20), a.ClassOrder.Order());
    }

    [Fact]
    public void RandomOrderIsPinned()
    {
        // Fisher–Yates with new Random(1993); pinned so that a runtime or code change that alters orders is noticed.
        Assert.Equal(new[] { 2, 4, 8, 3, 1, 0, 7, 6, 5, 9 }, ClassOrder.Random(10, ClassOrder.PaperSeed));
    }

    [Fact]
    public void ExplicitOrderAndLargerFirstTask()
    {
        int[] order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0];
        var scenario = ClassIncrementalScenario.Create(Dataset(10, 1), taskCount: 3, seed: 0, firstTaskClasses: 6, classOrder: order, taskIncremental: true);
        Assert.Equal(new[] { 6, 2, 2 }, scenario.Tasks.Select(t => t.Classes.Count));
        Assert.Equal(order, scenario.ClassOrder);
        Assert.Equal(9, scenario.OriginalClass(0));
        Assert.Equal(2, scenario.TaskOfClass(9));
        Assert.True(scenario.TaskIncremental);
        Assert.Equal(new[] { 50, 10, 10, 10, 10, 10 }, ClassIncrementalScenario.TaskSizes(100, 6, 50));
        Assert.Equal(new[] { 5, 5, 4, 4 }, ClassIncrementalScenario.TaskSizes(18, 4));
        Assert.Throws<ContinualMoEException>(() => ClassIncrementalScenario.TaskSizes(10, 11));
        Assert.Throws<ContinualMoEException>(() => ClassIncrementalScenario.TaskSizes(10, 3, 9));
        Assert.Throws<ContinualMoEException>(() => ClassIncrementalScenario.Create(Dataset(4, 1), 2, 0, classOrder: [0, 1, 1, 2]));
    }

    [Fact]
    public void OrderFileIsReadAndValidated()
    {
        var good = Path.Combine(_folder, "order.txt");
        File.WriteAllText(good, "# PILOT order\n3, 1 0\n\t2\n");
        Assert.Equal(new[] { 3, 1, 0, 2 }, ClassOrder.ReadFile(good, 4));

        void Bad(string content, string expected)
        {
            var path = Path.Combine(_folder, $"bad{Guid.NewGuid():N}.txt");
            File.WriteAllText(path, content);
            var error = Assert.Throws<ContinualMoEException>(() => ClassOrder.ReadFile(path, 4));
            Assert.StartsWith(path, error.Message);
            Assert.Contains(expected, error.Message);
        }
        Bad("0 1 2", "missing e.g. 3");
        Bad("0 1 2 2", "more than once");
        Bad("0 1 2 4", "out of range");
        Bad("0 1 two 3", "not an integer");
        Assert.Throws<ContinualMoEException>(() => ClassOrder.ReadFile(Path.Combine(_folder, "none.txt"), 4));
    }
}
