using ContinualMoE.Evaluation;

namespace ContinualMoE.Tests.Evaluation;

public class ClassificationAccumulatorTests
{
    // Two classes per task: labels 0-1 are task 0, 2-3 task 1, 4-5 task 2.
    private static ClassificationAccumulator Create() => new(3, label => label / 2);

    [Fact]
    public void Counts_accuracy_per_task_of_the_true_label()
    {
        var acc = Create();
        acc.Add(predictions: new long[] { 0, 1, 3, 2, 0 }, labels: new long[] { 0, 0, 3, 3, 2 });
        // Task 0: labels 0,0 predicted 0,1 -> 1/2. Task 1: labels 3,3,2 predicted 3,2,0 -> 1/3.
        Assert.Equal(1, acc.Correct(0));
        Assert.Equal(2, acc.Total(0));
        Assert.Equal(50.0, acc.Accuracy(0));
        Assert.Equal(100.0 / 3, acc.Accuracy(1), 9);
        Assert.True(double.IsNaN(acc.Accuracy(2)));
        Assert.Equal(40.0, acc.OverallAccuracy);
    }

    [Fact]
    public void Task_confusion_from_predicted_classes()
    {
        var acc = Create();
        acc.Add(new[] { 0, 1, 3, 2, 0 }, new[] { 0, 0, 3, 3, 2 });
        var confusion = acc.TaskConfusion;
        // True task 0: predicted classes 0,1 -> task 0 twice. True task 1: predicted 3,2,0 -> task 1 twice, task 0 once.
        Assert.Equal(2, confusion[0, 0]);
        Assert.Equal(2, confusion[1, 1]);
        Assert.Equal(1, confusion[1, 0]);
        Assert.Equal(100.0, acc.TaskIdentityAccuracy(0));
        Assert.Equal(200.0 / 3, acc.TaskIdentityAccuracy(1), 9);
        Assert.Equal(80.0, acc.OverallTaskIdentityAccuracy);
    }

    [Fact]
    public void Explicit_task_predictions_override_the_class_implied_task()
    {
        var acc = Create();
        acc.Add(new long[] { 0, 5 }, new long[] { 0, 5 }, predictedTasks: new long[] { 1, 2 });
        Assert.Equal(100.0, acc.OverallAccuracy);
        Assert.Equal(1, acc.TaskConfusion[0, 1]);
        Assert.Equal(0.0, acc.TaskIdentityAccuracy(0));
        Assert.Equal(100.0, acc.TaskIdentityAccuracy(2));
    }

    [Fact]
    public void Records_counts_into_the_matrix_column()
    {
        var acc = Create();
        acc.Add(new long[] { 0, 1, 2, 2 }, new long[] { 0, 0, 2, 3 });
        var matrix = new AccuracyMatrix(3);
        acc.RecordInto(matrix, afterTask: 1);
        Assert.Equal(50.0, matrix[0, 1]);
        Assert.Equal(2, matrix.Total(1, 1));
        Assert.True(double.IsNaN(matrix[2, 2]));

        var identity = new AccuracyMatrix(3);
        acc.RecordTaskIdentityInto(identity, afterTask: 1);
        Assert.Equal(100.0, identity[0, 1]);

        // Task 2 has no samples: recording after task 2 is an error, not a silent zero.
        Assert.Throws<ContinualMoEException>(() => acc.RecordInto(matrix, afterTask: 2));
    }

    [Fact]
    public void Rejects_mismatched_lengths_and_unmapped_labels()
    {
        var acc = Create();
        Assert.Throws<ContinualMoEException>(() => acc.Add(new long[] { 0 }, new long[] { 0, 1 }));
        Assert.Throws<ContinualMoEException>(() => acc.Add(new long[] { 0 }, new long[] { 6 }));
        Assert.Throws<ContinualMoEException>(() => acc.Add(new long[] { 0 }, new long[] { 0 }, new long[] { 3 }));
    }

    [Fact]
    public void Reset_clears_everything()
    {
        var acc = Create();
        acc.Add(new long[] { 0 }, new long[] { 0 });
        acc.Reset();
        Assert.Equal(0, acc.Total(0));
        Assert.Equal(0, acc.TaskConfusion[0, 0]);
    }
}
