using System.Globalization;
using System.Text;

namespace ContinualMoE.Evaluation;

/// <summary>
/// The accuracy matrix of a continual-learning run: <c>A[i, t]</c> is the accuracy, in percent (0..100), on task
/// <c>i</c>'s test set measured after training task <c>t</c>. Only cells with <c>i &lt;= t</c> are meaningful
/// (a task cannot be evaluated before it has been seen), so the matrix is upper-triangular; every other cell is NaN.
/// Rows are evaluated tasks, columns are training steps.
/// </summary>
/// <remarks>
/// Cells may optionally carry the sample counts they were computed from (<see cref="Record(int,int,double,long)"/>),
/// which lets metrics weight tasks by test-set size. The "correct" count is the sum of per-sample scores in [0, 1]: a
/// whole number when samples are right or wrong, fractional when a graded metric (ROUGE-L, SARI) scores them. Recording a cell twice overwrites it (re-evaluation wins).
/// </remarks>
public sealed class AccuracyMatrix
{
    private const string HeaderFirstColumn = "task";
    private const string HeaderColumnPrefix = "after_task_";

    private readonly double[,] _accuracy;
    // Zero total means "no count recorded" for that cell; a recorded total is always positive.
    private readonly double[,] _correct;
    private readonly long[,] _total;

    public AccuracyMatrix(int taskCount)
    {
        if (taskCount <= 0)
            throw new ContinualMoEException($"an accuracy matrix needs at least one task, got {taskCount}");
        TaskCount = taskCount;
        _accuracy = new double[taskCount, taskCount];
        _correct = new double[taskCount, taskCount];
        _total = new long[taskCount, taskCount];
        for (var i = 0; i < taskCount; i++)
            for (var t = 0; t < taskCount; t++)
                _accuracy[i, t] = double.NaN;
    }

    /// <summary>Number of tasks in the stream (the matrix is <c>TaskCount x TaskCount</c>).</summary>
    public int TaskCount { get; }

    /// <summary>
    /// Number of training steps whose evaluation is complete: the largest <c>k</c> such that every column
    /// <c>t &lt; k</c> has all its cells <c>A[0..t, t]</c> recorded. A column being filled in (evaluation under way)
    /// does not count yet, so metrics never average over a half-evaluated step.
    /// </summary>
    public int TasksTrained
    {
        get
        {
            var k = 0;
            while (k < TaskCount && IsStepComplete(k)) k++;
            return k;
        }
    }

    /// <summary>Accuracy in percent, or NaN when the cell is undefined (<c>i &gt; t</c>) or not yet recorded.</summary>
    public double this[int evaluatedTask, int afterTask]
    {
        get
        {
            CheckIndex(evaluatedTask, nameof(evaluatedTask));
            CheckIndex(afterTask, nameof(afterTask));
            return _accuracy[evaluatedTask, afterTask];
        }
    }

    /// <summary>Records an accuracy given in percent (0..100).</summary>
    public void Record(int evaluatedTask, int afterTask, double accuracy)
    {
        CheckCell(evaluatedTask, afterTask);
        if (double.IsNaN(accuracy) || accuracy < 0 || accuracy > 100)
            throw new ContinualMoEException(
                $"accuracy of task {evaluatedTask} after task {afterTask} must be a percentage in 0..100, got {accuracy}");
        _accuracy[evaluatedTask, afterTask] = accuracy;
        _correct[evaluatedTask, afterTask] = 0;
        _total[evaluatedTask, afterTask] = 0;
    }

    /// <summary>Records an accuracy from counts, keeping the counts so averages can be weighted by test-set size.
    /// <paramref name="correct"/> is the sum of the samples' scores in [0, 1] (the number right, for right/wrong scoring).</summary>
    public void Record(int evaluatedTask, int afterTask, double correct, long total)
    {
        CheckCell(evaluatedTask, afterTask);
        if (total <= 0 || double.IsNaN(correct) || correct < 0 || correct > total)
            throw new ContinualMoEException(
                $"counts of task {evaluatedTask} after task {afterTask} must satisfy 0 <= correct <= total and total > 0, " +
                $"got {correct}/{total}");
        _accuracy[evaluatedTask, afterTask] = 100.0 * correct / total;
        _correct[evaluatedTask, afterTask] = correct;
        _total[evaluatedTask, afterTask] = total;
    }

    public bool IsRecorded(int evaluatedTask, int afterTask) => !double.IsNaN(this[evaluatedTask, afterTask]);

    /// <summary>True when every task seen so far (<c>0..afterTask</c>) has been evaluated after <paramref name="afterTask"/>.</summary>
    public bool IsStepComplete(int afterTask)
    {
        CheckIndex(afterTask, nameof(afterTask));
        for (var i = 0; i <= afterTask; i++)
            if (double.IsNaN(_accuracy[i, afterTask])) return false;
        return true;
    }

    /// <summary>Number of correct test samples (sum of their scores), when the cell was recorded from counts.</summary>
    public double? Correct(int evaluatedTask, int afterTask)
    {
        CheckIndex(evaluatedTask, nameof(evaluatedTask));
        CheckIndex(afterTask, nameof(afterTask));
        return _total[evaluatedTask, afterTask] > 0 ? _correct[evaluatedTask, afterTask] : null;
    }

    /// <summary>Number of test samples, when the cell was recorded from counts.</summary>
    public long? Total(int evaluatedTask, int afterTask)
    {
        CheckIndex(evaluatedTask, nameof(evaluatedTask));
        CheckIndex(afterTask, nameof(afterTask));
        return _total[evaluatedTask, afterTask] > 0 ? _total[evaluatedTask, afterTask] : null;
    }

    /// <summary>
    /// The matrix as rows (evaluated task) of columns (after task), with null for undefined or unrecorded cells:
    /// JSON has no NaN, and null serialises cleanly.
    /// </summary>
    public double?[][] ToJagged()
    {
        var rows = new double?[TaskCount][];
        for (var i = 0; i < TaskCount; i++)
        {
            rows[i] = new double?[TaskCount];
            for (var t = 0; t < TaskCount; t++)
                rows[i][t] = double.IsNaN(_accuracy[i, t]) ? null : _accuracy[i, t];
        }
        return rows;
    }

    /// <summary>
    /// CSV with header <c>task,after_task_0,...,after_task_{T-1}</c>, one row per evaluated task, accuracies in percent
    /// written round-trippably with invariant culture, and empty cells where the accuracy is undefined.
    /// Sample counts are not part of the CSV.
    /// </summary>
    public string ToCsv()
    {
        var builder = new StringBuilder();
        builder.Append(HeaderFirstColumn);
        for (var t = 0; t < TaskCount; t++) builder.Append(',').Append(HeaderColumnPrefix).Append(t.ToString(CultureInfo.InvariantCulture));
        builder.Append('\n');
        for (var i = 0; i < TaskCount; i++)
        {
            builder.Append(i.ToString(CultureInfo.InvariantCulture));
            for (var t = 0; t < TaskCount; t++)
            {
                builder.Append(',');
                if (!double.IsNaN(_accuracy[i, t])) builder.Append(_accuracy[i, t].ToString("R", CultureInfo.InvariantCulture));
            }
            builder.Append('\n');
        }
        return builder.ToString();
    }

    /// <summary>Parses the format written by <see cref="ToCsv"/>; errors name the line.</summary>
    public static AccuracyMatrix FromCsv(string csv)
    {
        var lines = csv.Replace("\r\n", "\n").Split('\n').Where(line => line.Length > 0).ToArray();
        if (lines.Length == 0) throw new ContinualMoEException("accuracy matrix CSV is empty");

        var header = lines[0].Split(',');
        var taskCount = header.Length - 1;
        if (taskCount < 1 || header[0].Trim() != HeaderFirstColumn)
            throw new ContinualMoEException($"accuracy matrix CSV line 1: header must be '{HeaderFirstColumn},{HeaderColumnPrefix}0,...'");
        for (var t = 0; t < taskCount; t++)
            if (header[t + 1].Trim() != HeaderColumnPrefix + t.ToString(CultureInfo.InvariantCulture))
                throw new ContinualMoEException(
                    $"accuracy matrix CSV line 1: column {t + 2} must be '{HeaderColumnPrefix}{t}', got '{header[t + 1].Trim()}'");
        if (lines.Length - 1 != taskCount)
            throw new ContinualMoEException(
                $"accuracy matrix CSV has {taskCount} task columns but {lines.Length - 1} rows; the matrix must be square");

        var matrix = new AccuracyMatrix(taskCount);
        for (var i = 0; i < taskCount; i++)
        {
            var lineNumber = i + 2;
            var cells = lines[i + 1].Split(',');
            if (cells.Length != taskCount + 1)
                throw new ContinualMoEException($"accuracy matrix CSV line {lineNumber}: expected {taskCount + 1} cells, got {cells.Length}");
            if (!int.TryParse(cells[0].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var task) || task != i)
                throw new ContinualMoEException($"accuracy matrix CSV line {lineNumber}: first cell must be task {i}, got '{cells[0].Trim()}'");
            for (var t = 0; t < taskCount; t++)
            {
                var text = cells[t + 1].Trim();
                if (text.Length == 0) continue;
                if (i > t)
                    throw new ContinualMoEException(
                        $"accuracy matrix CSV line {lineNumber}: task {i} cannot have an accuracy after task {t} (cell must be empty)");
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                    throw new ContinualMoEException($"accuracy matrix CSV line {lineNumber}: '{text}' is not a number");
                try { matrix.Record(i, t, value); }
                catch (ContinualMoEException e) { throw new ContinualMoEException($"accuracy matrix CSV line {lineNumber}: {e.Message}", e); }
            }
        }
        return matrix;
    }

    private void CheckCell(int evaluatedTask, int afterTask)
    {
        CheckIndex(evaluatedTask, nameof(evaluatedTask));
        CheckIndex(afterTask, nameof(afterTask));
        if (evaluatedTask > afterTask)
            throw new ContinualMoEException(
                $"cannot record accuracy of task {evaluatedTask} after task {afterTask}: a task is evaluated only once it has been trained");
    }

    private void CheckIndex(int index, string name)
    {
        if (index < 0 || index >= TaskCount)
            throw new ArgumentOutOfRangeException(name, index, $"must be in 0..{TaskCount - 1}");
    }
}
