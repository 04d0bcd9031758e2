using ContinualMoE.Evaluation;

namespace ContinualMoE.Tests.Evaluation;

public class AccuracyMatrixTests
{
    [Fact]
    public void New_matrix_is_all_undefined_and_has_no_trained_task()
    {
        var a = new AccuracyMatrix(3);
        Assert.Equal(3, a.TaskCount);
        Assert.Equal(0, a.TasksTrained);
        Assert.True(double.IsNaN(a[0, 0]));
        Assert.All(a.ToJagged().SelectMany(row => row), cell => Assert.Null(cell));
    }

    [Fact]
    public void Lower_triangle_cannot_be_recorded()
    {
        var a = new AccuracyMatrix(3);
        Assert.Throws<ContinualMoEException>(() => a.Record(2, 1, 50.0));
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(100.1)]
    [InlineData(double.NaN)]
    public void Accuracy_outside_percent_range_is_rejected(double accuracy)
    {
        var a = new AccuracyMatrix(2);
        Assert.Throws<ContinualMoEException>(() => a.Record(0, 0, accuracy));
    }

    [Fact]
    public void Counts_give_percent_and_are_kept()
    {
        var a = new AccuracyMatrix(2);
        a.Record(0, 0, correct: 3, total: 4);
        Assert.Equal(75.0, a[0, 0]);
        Assert.Equal(3.0, a.Correct(0, 0));
        Assert.Equal(4, a.Total(0, 0));

        // Overwriting with a plain percentage drops the counts, so they never disagree with the accuracy.
        a.Record(0, 0, 50.0);
        Assert.Null(a.Total(0, 0));
        Assert.Throws<ContinualMoEException>(() => a.Record(0, 1, correct: 5, total: 4));
        Assert.Throws<ContinualMoEException>(() => a.Record(0, 1, correct: 0, total: 0));
    }

    [Fact]
    public void TasksTrained_counts_only_complete_leading_steps()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 90);
        Assert.Equal(1, a.TasksTrained);
        a.Record(1, 1, 85); // step 1 still misses task 0
        Assert.Equal(1, a.TasksTrained);
        Assert.False(a.IsStepComplete(1));
        a.Record(0, 1, 80);
        Assert.Equal(2, a.TasksTrained);
        Assert.True(a.IsStepComplete(1));
    }

    [Fact]
    public void Csv_has_documented_header_and_empty_undefined_cells()
    {
        var a = new AccuracyMatrix(2);
        a.Record(0, 0, 90.5);
        a.Record(0, 1, 80);
        a.Record(1, 1, 70.25);
        Assert.Equal("task,after_task_0,after_task_1\n0,90.5,80\n1,,70.25\n", a.ToCsv());
    }

    [Fact]
    public void Csv_round_trips_exact_values_including_partial_matrices()
    {
        var a = new AccuracyMatrix(3);
        a.Record(0, 0, 100.0 / 3);
        a.Record(0, 1, 0.1 + 0.2);
        a.Record(1, 1, correct: 2, total: 7);
        var back = AccuracyMatrix.FromCsv(a.ToCsv());
        Assert.Equal(3, back.TaskCount);
        Assert.Equal(2, back.TasksTrained);
        for (var i = 0; i < 3; i++)
            for (var t = 0; t < 3; t++)
                Assert.Equal(a[i, t], back[i, t]); // NaN equals NaN for xunit doubles
    }

    [Fact]
    public void FromCsv_accepts_crlf()
    {
        var back = AccuracyMatrix.FromCsv("task,after_task_0\r\n0,42\r\n");
        Assert.Equal(42, back[0, 0]);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("id,after_task_0\n0,1\n", "line 1")]
    [InlineData("task,after_task_0,after_task_1\n0,1,\n", "square")]
    [InlineData("task,after_task_0,after_task_1\n0,1,2\n1,3,4\n", "line 3")]
    [InlineData("task,after_task_0\n0,abc\n", "not a number")]
    [InlineData("task,after_task_0\n0,150\n", "line 2")]
    public void FromCsv_rejects_malformed_input_with_a_located_message(string csv, string expectedFragment)
    {
        var error = Assert.Throws<ContinualMoEException>(() => AccuracyMatrix.FromCsv(csv));
        Assert.Contains(expectedFragment, error.Message);
    }

    [Fact]
    public void Jagged_view_has_rows_of_evaluated_tasks()
    {
        var a = new AccuracyMatrix(2);
        a.Record(0, 1, 60);
        var rows = a.ToJagged();
        Assert.Equal(60, rows[0][1]);
        Assert.Null(rows[1][0]);
        Assert.Null(rows[0][0]);
    }
}
