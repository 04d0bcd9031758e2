using ContinualMoE.Evaluation;

namespace ContinualMoE.Tests.Evaluation;

public class ContinualMetricsTests
{
    private const int Precision = 9;

    /// <summary>
    /// A (rows: evaluated task i, columns: after task t), percent:
    ///        t=0  t=1  t=2
    ///   i=0   90   95   70
    ///   i=1    -   85   75
    ///   i=2    -    -   95
    /// </summary>
    private static AccuracyMatrix ThreeTasks()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 90); a.Record(0, 1, 95); a.Record(0, 2, 70);
        a.Record(1, 1, 85); a.Record(1, 2, 75);
        a.Record(2, 2, 95);
        return a;
    }

    [Fact]
    public void Hand_computed_three_task_metrics()
    {
        var m = ContinualMetrics.Compute(ThreeTasks());

        // Average accuracy after each step: 90; (95+85)/2 = 90; (70+75+95)/3 = 80.
        Assert.Equal(new[] { 90.0, 90.0, 80.0 }, m.AverageAccuracyCurve);
        // FAA = last point of the curve.
        Assert.Equal(80.0, m.FinalAverageAccuracy, Precision);
        // CAA = (90 + 90 + 80) / 3 = 86.666...
        Assert.Equal(260.0 / 3, m.CumulativeAverageAccuracy, Precision);
        // Forgetting: task 0: max(90, 95) - 70 = 25; task 1: max(85) - 75 = 10; mean 17.5.
        Assert.Equal(new[] { 25.0, 10.0 }, m.TaskForgetting);
        Assert.Equal(17.5, m.Forgetting!.Value, Precision);
        // BWT: task 0: 70 - 90 = -20; task 1: 75 - 85 = -10; mean -15 (differs from -forgetting because of the 95 peak).
        Assert.Equal(-15.0, m.BackwardTransfer!.Value, Precision);
        Assert.Equal(new[] { 70.0, 75.0, 95.0 }, m.FinalTaskAccuracies);
        Assert.Equal(3, m.TasksTrained);
        // No sizes and no counts: the over-samples fields are absent rather than silently unweighted.
        Assert.Null(m.FinalAccuracyOverSamples);
        Assert.Null(m.AccuracyOverSamplesCurve);
        Assert.Null(m.CumulativeAccuracyOverSamples);
        Assert.Null(m.TaskIdentity);
    }

    [Fact]
    public void Test_set_sizes_weight_the_over_samples_fields_only()
    {
        var m = ContinualMetrics.Compute(ThreeTasks(), testSetSizes: new[] { 100, 200, 100 });

        // Step 0: 90. Step 1: (100*95 + 200*85) / 300 = 26500/300 = 88.333...
        // Step 2: (100*70 + 200*75 + 100*95) / 400 = 31500/400 = 78.75.
        Assert.Equal(90.0, m.AccuracyOverSamplesCurve![0], Precision);
        Assert.Equal(26500.0 / 300, m.AccuracyOverSamplesCurve[1], Precision);
        Assert.Equal(78.75, m.FinalAccuracyOverSamples!.Value, Precision);
        Assert.Equal((90.0 + 26500.0 / 300 + 78.75) / 3, m.CumulativeAccuracyOverSamples!.Value, Precision);
        // Unweighted fields are unchanged by sizes.
        Assert.Equal(80.0, m.FinalAverageAccuracy, Precision);
        Assert.Equal(260.0 / 3, m.CumulativeAverageAccuracy, Precision);
    }

    [Fact]
    public void Equal_sizes_make_weighted_equal_unweighted()
    {
        var m = ContinualMetrics.Compute(ThreeTasks(), testSetSizes: new[] { 50, 50, 50 });
        Assert.Equal(m.FinalAverageAccuracy, m.FinalAccuracyOverSamples!.Value, Precision);
        Assert.Equal(m.CumulativeAverageAccuracy, m.CumulativeAccuracyOverSamples!.Value, Precision);
    }

    [Fact]
    public void Recorded_counts_are_used_as_weights_when_sizes_are_not_given()
    {
        var a = new AccuracyMatrix(2);
        a.Record(0, 0, correct: 9, total: 10);
        a.Record(0, 1, correct: 8, total: 10);
        a.Record(1, 1, correct: 15, total: 30);
        var m = ContinualMetrics.Compute(a);
        // Over samples after step 1: (8 + 15) / (10 + 30) = 57.5%; unweighted: (80 + 50) / 2 = 65%.
        Assert.Equal(57.5, m.FinalAccuracyOverSamples!.Value, Precision);
        Assert.Equal(65.0, m.FinalAverageAccuracy, Precision);
    }

    [Fact]
    public void Partial_matrix_uses_complete_steps_and_afterTasks_rewinds()
    {
        var a = ThreeTasks();
        var afterTwo = ContinualMetrics.Compute(a, afterTasks: 2);
        // After two tasks: FAA = (95+85)/2 = 90, CAA = (90+90)/2 = 90,
        // forgetting of task 0 = max(90) - 95 = -5 (it improved), BWT = 95 - 90 = +5.
        Assert.Equal(2, afterTwo.TasksTrained);
        Assert.Equal(90.0, afterTwo.FinalAverageAccuracy, Precision);
        Assert.Equal(90.0, afterTwo.CumulativeAverageAccuracy, Precision);
        Assert.Equal(-5.0, afterTwo.Forgetting!.Value, Precision);
        Assert.Equal(5.0, afterTwo.BackwardTransfer!.Value, Precision);

        // A matrix mid-evaluation of step 2 gives the same numbers by default.
        var partial = new AccuracyMatrix(3);
        partial.Record(0, 0, 90); partial.Record(0, 1, 95); partial.Record(1, 1, 85);
        partial.Record(2, 2, 95);
        Assert.Equal(afterTwo.Forgetting, ContinualMetrics.Compute(partial).Forgetting);
        Assert.Throws<ContinualMoEException>(() => ContinualMetrics.Compute(partial, afterTasks: 3));
    }

    [Fact]
    public void Single_step_has_no_forgetting_or_transfer()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 88);
        var m = ContinualMetrics.Compute(a);
        Assert.Equal(88.0, m.FinalAverageAccuracy);
        Assert.Equal(88.0, m.CumulativeAverageAccuracy);
        Assert.Null(m.Forgetting);
        Assert.Null(m.BackwardTransfer);
        Assert.Empty(m.TaskForgetting);
    }

    [Fact]
    public void Empty_matrix_and_bad_sizes_are_rejected()
    {
        Assert.Throws<ContinualMoEException>(() => ContinualMetrics.Compute(new AccuracyMatrix(2)));
        Assert.Throws<ContinualMoEException>(() => ContinualMetrics.Compute(ThreeTasks(), new[] { 10, 10 }));
        Assert.Throws<ContinualMoEException>(() => ContinualMetrics.Compute(ThreeTasks(), new[] { 10, 0, 10 }));
    }

    [Fact]
    public void Each_step_matches_rewound_compute()
    {
        var steps = ContinualMetrics.ComputeEachStep(ThreeTasks());
        Assert.Equal(3, steps.Count);
        Assert.Equal(new[] { 90.0, 90.0, 80.0 }, steps.Select(s => s.FinalAverageAccuracy));
        Assert.Equal(17.5, steps[2].Forgetting!.Value, Precision);
    }

    [Fact]
    public void Task_identity_matrix_is_averaged_like_accuracy()
    {
        var identity = new AccuracyMatrix(3);
        identity.Record(0, 0, correct: 10, total: 10);
        identity.Record(0, 1, correct: 9, total: 10);
        identity.Record(1, 1, correct: 7, total: 10);
        identity.Record(0, 2, correct: 8, total: 10);
        identity.Record(1, 2, correct: 6, total: 10);
        identity.Record(2, 2, correct: 10, total: 10);

        var m = ContinualMetrics.Compute(ThreeTasks(), taskIdentity: identity);
        // Curve: 100; (90+70)/2 = 80; (80+60+100)/3 = 80. Counts are equal, so over samples is the same.
        Assert.Equal(new[] { 100.0, 80.0, 80.0 }, m.TaskIdentity!.Curve);
        Assert.Equal(80.0, m.TaskIdentity.FinalAverage, Precision);
        Assert.Equal(80.0, m.TaskIdentity.FinalOverSamples!.Value, Precision);

        var incomplete = new AccuracyMatrix(3);
        incomplete.Record(0, 0, 100);
        Assert.Throws<ContinualMoEException>(() => ContinualMetrics.Compute(ThreeTasks(), taskIdentity: incomplete));
    }
}
