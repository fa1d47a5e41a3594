package dev.tandem.app.bench;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.DatasetRenderingOrder;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.category.BoxAndWhiskerRenderer;
import org.jfree.chart.renderer.category.ScatterRenderer;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.chart.title.TextTitle;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.data.statistics.BoxAndWhiskerItem;
import org.jfree.data.statistics.DefaultBoxAndWhiskerCategoryDataset;
import org.jfree.data.statistics.DefaultMultiValueCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.geom.Ellipse2D;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The charts of {@link BenchReport}, drawn with JFreeChart on AWT. Apart so that a Java runtime without the
 * java.desktop module (the GPU check's trimmed one) never loads these classes: the report then says a chart
 * was not drawn ({@link BenchReport#CHARTS}).
 */
final class BenchCharts {
    private BenchCharts() {
    }

    /**
     * Box plots of one series of figures, one box per category, with every repetition drawn over its
     * box as a dot (JFreeChart's own outlier circles grow with the box width, and its axis range leaves
     * outliers out; a scatter layer of all values avoids both).
     */
    private static DefaultBoxAndWhiskerCategoryDataset boxes(BenchReport.Boxes data) {
        DefaultBoxAndWhiskerCategoryDataset boxes = new DefaultBoxAndWhiskerCategoryDataset();
        for (int i = 0; i < data.figures.size(); i++) {
            boxes.add(boxItem(data.figures.get(i)), "median and quartiles", data.categories.get(i));
        }
        return boxes;
    }

    private static DefaultMultiValueCategoryDataset dots(BenchReport.Boxes data) {
        DefaultMultiValueCategoryDataset dots = new DefaultMultiValueCategoryDataset();
        for (int i = 0; i < data.figures.size(); i++) {
            List<Double> values = new ArrayList<>();
            for (double v : data.figures.get(i).values()) {
                values.add(v);
            }
            dots.add(values, "repetitions", data.categories.get(i));
        }
        return dots;
    }

    /** The one-pass-over-k-rows chart: measured ratio against k, and the line k × one row. */
    static byte[] rowsChart(String title, String subtitle, double[][] points) {
        XYSeries measured = new XYSeries("measured (median ms over k rows / over 1 row)");
        XYSeries linear = new XYSeries("k × one row (no sharing)");
        for (double[] p : points) {
            measured.add(p[0], p[1]);
            linear.add(p[0], p[0]);
        }
        return lineChart(title, subtitle, "rows per pass (k)", "time relative to one row (×)", measured, linear);
    }

    static byte[] boxChart(String title, String subtitle, String categoryLabel, String valueLabel, BenchReport.Boxes data) {
        JFreeChart chart = ChartFactory.createBoxAndWhiskerChart(title, categoryLabel, valueLabel, boxes(data), false);
        CategoryPlot plot = chart.getCategoryPlot();
        BoxAndWhiskerRenderer renderer = (BoxAndWhiskerRenderer) plot.getRenderer();
        renderer.setMeanVisible(false);
        renderer.setMedianVisible(true);
        renderer.setFillBox(true);
        renderer.setMaximumBarWidth(0.12);
        renderer.setUseOutlinePaintForWhiskers(true);
        renderer.setSeriesPaint(0, new Color(0x8DB6E0));
        renderer.setSeriesOutlinePaint(0, new Color(0x2B5C8A));
        renderer.setDefaultOutlinePaint(new Color(0x2B5C8A));
        ScatterRenderer dots = new ScatterRenderer();
        dots.setUseSeriesOffset(false);
        dots.setSeriesShape(0, new Ellipse2D.Double(-3, -3, 6, 6));
        dots.setSeriesPaint(0, new Color(0, 0, 0, 150));
        dots.setSeriesVisibleInLegend(0, false);
        plot.setDataset(1, dots(data));
        plot.setRenderer(1, dots);
        plot.setDatasetRenderingOrder(DatasetRenderingOrder.FORWARD);
        style(chart, subtitle);
        TextTitle key = new TextTitle("box: quartiles, line: median, whiskers: furthest repetition within 1.5 IQR, "
                + "dots: every repetition", new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        key.setPosition(RectangleEdge.BOTTOM);
        chart.addSubtitle(key);
        plot.getDomainAxis().setMaximumCategoryLabelLines(2);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        return png(chart);
    }

    static byte[] lineChart(String title, String subtitle, String xLabel, String yLabel, XYSeries... series) {
        XYSeriesCollection data = new XYSeriesCollection();
        for (XYSeries s : series) {
            data.addSeries(s);
        }
        JFreeChart chart = ChartFactory.createXYLineChart(title, xLabel, yLabel, data);
        XYPlot plot = chart.getXYPlot();
        XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(true, true);
        renderer.setSeriesShapesVisible(1, false);
        renderer.setSeriesPaint(1, Color.GRAY);
        renderer.setSeriesStroke(1, new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f,
                new float[] {6f, 4f}, 0f));
        renderer.setSeriesStroke(0, new BasicStroke(2f));
        plot.setRenderer(renderer);
        ((NumberAxis) plot.getDomainAxis()).setStandardTickUnits(NumberAxis.createIntegerTickUnits());
        ((NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(true);
        style(chart, subtitle);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        return png(chart);
    }

    private static void style(JFreeChart chart, String subtitle) {
        chart.setBackgroundPaint(Color.WHITE);
        if (!subtitle.isEmpty()) {
            chart.addSubtitle(new TextTitle(subtitle));
        }
    }

    private static byte[] png(JFreeChart chart) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            ChartUtils.writeChartAsPNG(out, chart, BenchReport.CHART_WIDTH, BenchReport.CHART_HEIGHT);
        } catch (IOException e) {
            throw new IllegalStateException("could not render a chart (" + e.getMessage() + ")", e);
        } catch (java.awt.AWTError e) {
            throw new IllegalStateException("could not render a chart: AWT was started without headless mode and "
                    + "finds no display (" + e.getMessage() + "); run with -Djava.awt.headless=true.", e);
        }
        return out.toByteArray();
    }

    /**
     * A box from the recorded quartiles and f.median(), whiskers to the furthest f.values() within 1.5 IQR;
     * no outliers (the chart draws every value as a dot instead).
     */
    static BoxAndWhiskerItem boxItem(BenchReport.Fig f) {
        double lo = f.q1();
        double hi = f.q3();
        double lowFence = lo - 1.5 * (hi - lo);
        double highFence = hi + 1.5 * (hi - lo);
        double minRegular = lo;
        double maxRegular = hi;
        double min = lo;
        double max = hi;
        double sum = 0;
        for (double v : f.values()) {
            sum += v;
            min = Math.min(min, v);
            max = Math.max(max, v);
            if (v >= lowFence && v <= highFence) {
                minRegular = Math.min(minRegular, v);
                maxRegular = Math.max(maxRegular, v);
            }
        }
        double mean = f.values().length > 0 ? sum / f.values().length : f.median();
        return new BoxAndWhiskerItem(mean, f.median(), lo, hi, minRegular, maxRegular, min, max, List.of());
    }
}
