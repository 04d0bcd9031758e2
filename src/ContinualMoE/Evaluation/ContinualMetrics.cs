namespace ContinualMoE.Evaluation;

/// <summary>
/// Standard continual-learning metrics computed from an <see cref="AccuracyMatrix"/>, all in percent
/// (percentage points for forgetting and backward transfer). Formulas are in docs/metrics.md.
/// Fields that need more than one trained task (forgetting, backward transfer) are null after the first task;
/// fields that need test-set sizes are null when neither sizes nor per-cell counts are available.
/// </summary>
/// <param name="TasksTrained">Number of training steps <c>k</c> the metrics cover (columns <c>0..k-1</c>).</param>
/// <param name="FinalAverageAccuracy">FAA: unweighted mean over seen tasks of <c>A[i, k-1]</c>.</param>
/// <param name="FinalAccuracyOverSamples">Accuracy over all test samples of seen tasks after step <c>k-1</c> (tasks weighted by test-set size).</param>
/// <param name="CumulativeAverageAccuracy">CAA ("average incremental accuracy"): mean over steps of <see cref="AverageAccuracyCurve"/>.</param>
/// <param name="CumulativeAccuracyOverSamples">Mean over steps of <see cref="AccuracyOverSamplesCurve"/>.</param>
/// <param name="Forgetting">Mean over old tasks of (best earlier accuracy − final accuracy) (Chaudhry et al. 2018).</param>
/// <param name="BackwardTransfer">Mean over old tasks of (final accuracy − accuracy right after learning it) (Lopez-Paz &amp; Ranzato 2017).</param>
/// <param name="FinalTaskAccuracies">Per seen task <c>i</c>: <c>A[i, k-1]</c>.</param>
/// <param name="TaskForgetting">Per old task <c>i &lt; k-1</c>: its forgetting.</param>
/// <param name="AverageAccuracyCurve">Per step <c>t</c>: unweighted mean of <c>A[0..t, t]</c>.</param>
/// <param name="AccuracyOverSamplesCurve">Per step <c>t</c>: size-weighted mean of <c>A[0..t, t]</c>.</param>
/// <param name="TaskIdentity">Task-identity accuracy, for methods that predict the task (e.g. HiDe-Prompt).</param>
public sealed record ContinualMetrics(
    int TasksTrained,
    double FinalAverageAccuracy,
    double? FinalAccuracyOverSamples,
    double CumulativeAverageAccuracy,
    double? CumulativeAccuracyOverSamples,
    double? Forgetting,
    double? BackwardTransfer,
    double[] FinalTaskAccuracies,
    double[] TaskForgetting,
    double[] AverageAccuracyCurve,
    double[]? AccuracyOverSamplesCurve,
    TaskIdentityMetrics? TaskIdentity)
{
    /// <summary>
    /// Metrics after the first <paramref name="afterTasks"/> training steps (default: every complete step,
    /// <see cref="AccuracyMatrix.TasksTrained"/>). Giving fewer steps yields the metrics as they stood mid-run.
    /// </summary>
    /// <param name="testSetSizes">Test-set size per task, for the over-samples fields. When null, the counts recorded
    /// in the matrix cells are used if every needed cell has them.</param>
    /// <param name="taskIdentity">Optional matrix of task-identity accuracies, recorded like the accuracy matrix:
    /// cell <c>[i, t]</c> is the percentage of task <c>i</c>'s test samples whose predicted task is <c>i</c> after step <c>t</c>.</param>
    public static ContinualMetrics Compute(
        AccuracyMatrix a,
        IReadOnlyList<int>? testSetSizes = null,
        AccuracyMatrix? taskIdentity = null,
        int? afterTasks = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        var k = ResolveSteps(a, afterTasks, "accuracy matrix");
        ValidateSizes(testSetSizes, k);

        var curve = AverageCurve(a, k);
        var weightedCurve = WeightedCurve(a, k, testSetSizes);
        var last = k - 1;

        var finalAccuracies = new double[k];
        for (var i = 0; i < k; i++) finalAccuracies[i] = a[i, last];

        // Old tasks are those trained before the last step; with one step there are none and both metrics are undefined.
        var taskForgetting = new double[last];
        var transfer = 0.0;
        for (var i = 0; i < last; i++)
        {
            var best = double.NegativeInfinity;
            for (var t = i; t <= last - 1; t++) best = Math.Max(best, a[i, t]);
            taskForgetting[i] = best - a[i, last];
            transfer += a[i, last] - a[i, i];
        }

        TaskIdentityMetrics? identity = null;
        if (taskIdentity is not null)
        {
            if (taskIdentity.TaskCount != a.TaskCount)
                throw new ContinualMoEException(
                    $"task-identity matrix has {taskIdentity.TaskCount} tasks but the accuracy matrix has {a.TaskCount}");
            ResolveSteps(taskIdentity, k, "task-identity matrix");
            var identityCurve = AverageCurve(taskIdentity, k);
            var identityWeighted = WeightedCurve(taskIdentity, k, testSetSizes);
            identity = new TaskIdentityMetrics(identityCurve[last], identityWeighted?[last], identityCurve, identityWeighted);
        }

        return new ContinualMetrics(
            TasksTrained: k,
            FinalAverageAccuracy: curve[last],
            FinalAccuracyOverSamples: weightedCurve?[last],
            CumulativeAverageAccuracy: curve.Average(),
            CumulativeAccuracyOverSamples: weightedCurve?.Average(),
            Forgetting: last > 0 ? taskForgetting.Average() : null,
            BackwardTransfer: last > 0 ? transfer / last : null,
            FinalTaskAccuracies: finalAccuracies,
            TaskForgetting: taskForgetting,
            AverageAccuracyCurve: curve,
            AccuracyOverSamplesCurve: weightedCurve,
            TaskIdentity: identity);
    }

    /// <summary>The metrics after each complete step: element <c>t</c> is <c>Compute(a, ..., afterTasks: t + 1)</c>.</summary>
    public static IReadOnlyList<ContinualMetrics> ComputeEachStep(
        AccuracyMatrix a, IReadOnlyList<int>? testSetSizes = null, AccuracyMatrix? taskIdentity = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        var steps = a.TasksTrained;
        if (taskIdentity is not null) steps = Math.Min(steps, taskIdentity.TasksTrained);
        return Enumerable.Range(1, steps).Select(k => Compute(a, testSetSizes, taskIdentity, k)).ToArray();
    }

    private static int ResolveSteps(AccuracyMatrix matrix, int? afterTasks, string what)
    {
        var complete = matrix.TasksTrained;
        var k = afterTasks ?? complete;
        if (k < 1)
            throw new ContinualMoEException(afterTasks is null
                ? $"{what} has no complete training step: record the accuracy of task 0 after task 0 first"
                : $"metrics need at least one training step, got afterTasks = {k}");
        if (k > complete)
            throw new ContinualMoEException(
                $"{what} is complete for {complete} training step(s) only; cannot compute metrics after {k}");
        return k;
    }

    private static void ValidateSizes(IReadOnlyList<int>? sizes, int k)
    {
        if (sizes is null) return;
        if (sizes.Count < k)
            throw new ContinualMoEException($"test-set sizes given for {sizes.Count} task(s) but metrics cover {k}");
        for (var i = 0; i < k; i++)
            if (sizes[i] <= 0)
                throw new ContinualMoEException($"test-set size of task {i} must be positive, got {sizes[i]}");
    }

    private static double[] AverageCurve(AccuracyMatrix a, int k)
    {
        var curve = new double[k];
        for (var t = 0; t < k; t++)
        {
            var sum = 0.0;
            for (var i = 0; i <= t; i++) sum += a[i, t];
            curve[t] = sum / (t + 1);
        }
        return curve;
    }

    /// <summary>
    /// Size-weighted mean per step, i.e. accuracy over all test samples of the seen tasks — what PILOT/L2P-style code
    /// reports. Explicit sizes win; otherwise each cell's recorded total is its weight; null if neither is available.
    /// </summary>
    private static double[]? WeightedCurve(AccuracyMatrix a, int k, IReadOnlyList<int>? sizes)
    {
        var curve = new double[k];
        for (var t = 0; t < k; t++)
        {
            double weighted = 0, weights = 0;
            for (var i = 0; i <= t; i++)
            {
                double weight;
                if (sizes is not null) weight = sizes[i];
                else if (a.Total(i, t) is { } total) weight = total;
                else return null;
                weighted += weight * a[i, t];
                weights += weight;
            }
            curve[t] = weighted / weights;
        }
        return curve;
    }
}
