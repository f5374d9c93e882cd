// A behavioural model of the ECP5 DP16KD block RAM, read side only, for simulating netlists
// from Yosys 0.23's synth_ecp5 of the generator's ROMs (tests/test_outreg.py). It models what
// those netlists use: data widths 9 and 18 on either port and the 36-bit pseudo dual-port mode
// (port B reads {DOB, DOA}); REGMODE NOREG or OUTREG, the output register loading on OCEx
// (inverted with OCExMUX = "INV"); contents from INITVAL_00 .. INITVAL_3F, 1,024 rows of 18 bits,
// each row in 20 bits of them, as Yosys's brams_map.v lays them out. Writes and resets are not
// modelled: a netlist that uses them stops the simulation. Yosys's own cells_sim.v declares the
// DP16KD without behaviour; this module takes its place.
`default_nettype none
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  parameter OCEAMUX = "OCEA";
  parameter OCEBMUX = "OCEB";
  parameter ASYNC_RESET_RELEASE = "";
  parameter CSDECODE_A = "";
  parameter CSDECODE_B = "";
  parameter GSR = "";
  parameter RESETMODE = "";
  parameter WRITEMODE_A = "";
  parameter WRITEMODE_B = "";
  parameter [319:0] INITVAL_00 = 320'h0;
  parameter [319:0] INITVAL_01 = 320'h0;
  parameter [319:0] INITVAL_02 = 320'h0;
  parameter [319:0] INITVAL_03 = 320'h0;
  parameter [319:0] INITVAL_04 = 320'h0;
  parameter [319:0] INITVAL_05 = 320'h0;
  parameter [319:0] INITVAL_06 = 320'h0;
  parameter [319:0] INITVAL_07 = 320'h0;
  parameter [319:0] INITVAL_08 = 320'h0;
  parameter [319:0] INITVAL_09 = 320'h0;
  parameter [319:0] INITVAL_0A = 320'h0;
  parameter [319:0] INITVAL_0B = 320'h0;
  parameter [319:0] INITVAL_0C = 320'h0;
  parameter [319:0] INITVAL_0D = 320'h0;
  parameter [319:0] INITVAL_0E = 320'h0;
  parameter [319:0] INITVAL_0F = 320'h0;
  parameter [319:0] INITVAL_10 = 320'h0;
  parameter [319:0] INITVAL_11 = 320'h0;
  parameter [319:0] INITVAL_12 = 320'h0;
  parameter [319:0] INITVAL_13 = 320'h0;
  parameter [319:0] INITVAL_14 = 320'h0;
  parameter [319:0] INITVAL_15 = 320'h0;
  parameter [319:0] INITVAL_16 = 320'h0;
  parameter [319:0] INITVAL_17 = 320'h0;
  parameter [319:0] INITVAL_18 = 320'h0;
  parameter [319:0] INITVAL_19 = 320'h0;
  parameter [319:0] INITVAL_1A = 320'h0;
  parameter [319:0] INITVAL_1B = 320'h0;
  parameter [319:0] INITVAL_1C = 320'h0;
  parameter [319:0] INITVAL_1D = 320'h0;
  parameter [319:0] INITVAL_1E = 320'h0;
  parameter [319:0] INITVAL_1F = 320'h0;
  parameter [319:0] INITVAL_20 = 320'h0;
  parameter [319:0] INITVAL_21 = 320'h0;
  parameter [319:0] INITVAL_22 = 320'h0;
  parameter [319:0] INITVAL_23 = 320'h0;
  parameter [319:0] INITVAL_24 = 320'h0;
  parameter [319:0] INITVAL_25 = 320'h0;
  parameter [319:0] INITVAL_26 = 320'h0;
  parameter [319:0] INITVAL_27 = 320'h0;
  parameter [319:0] INITVAL_28 = 320'h0;
  parameter [319:0] INITVAL_29 = 320'h0;
  parameter [319:0] INITVAL_2A = 320'h0;
  parameter [319:0] INITVAL_2B = 320'h0;
  parameter [319:0] INITVAL_2C = 320'h0;
  parameter [319:0] INITVAL_2D = 320'h0;
  parameter [319:0] INITVAL_2E = 320'h0;
  parameter [319:0] INITVAL_2F = 320'h0;
  parameter [319:0] INITVAL_30 = 320'h0;
  parameter [319:0] INITVAL_31 = 320'h0;
  parameter [319:0] INITVAL_32 = 320'h0;
  parameter [319:0] INITVAL_33 = 320'h0;
  parameter [319:0] INITVAL_34 = 320'h0;
  parameter [319:0] INITVAL_35 = 320'h0;
  parameter [319:0] INITVAL_36 = 320'h0;
  parameter [319:0] INITVAL_37 = 320'h0;
  parameter [319:0] INITVAL_38 = 320'h0;
  parameter [319:0] INITVAL_39 = 320'h0;
  parameter [319:0] INITVAL_3A = 320'h0;
  parameter [319:0] INITVAL_3B = 320'h0;
  parameter [319:0] INITVAL_3C = 320'h0;
  parameter [319:0] INITVAL_3D = 320'h0;
  parameter [319:0] INITVAL_3E = 320'h0;
  parameter [319:0] INITVAL_3F = 320'h0;

  reg [17:0] rows [0:1023];
  integer r;
  reg [319:0] group;
  initial begin
    for (r = 0; r < 1024; r = r + 1) begin
      case (r / 16)
        0: group = INITVAL_00;
        1: group = INITVAL_01;
        2: group = INITVAL_02;
        3: group = INITVAL_03;
        4: group = INITVAL_04;
        5: group = INITVAL_05;
        6: group = INITVAL_06;
        7: group = INITVAL_07;
        8: group = INITVAL_08;
        9: group = INITVAL_09;
        10: group = INITVAL_0A;
        11: group = INITVAL_0B;
        12: group = INITVAL_0C;
        13: group = INITVAL_0D;
        14: group = INITVAL_0E;
        15: group = INITVAL_0F;
        16: group = INITVAL_10;
        17: group = INITVAL_11;
        18: group = INITVAL_12;
        19: group = INITVAL_13;
        20: group = INITVAL_14;
        21: group = INITVAL_15;
        22: group = INITVAL_16;
        23: group = INITVAL_17;
        24: group = INITVAL_18;
        25: group = INITVAL_19;
        26: group = INITVAL_1A;
        27: group = INITVAL_1B;
        28: group = INITVAL_1C;
        29: group = INITVAL_1D;
        30: group = INITVAL_1E;
        31: group = INITVAL_1F;
        32: group = INITVAL_20;
        33: group = INITVAL_21;
        34: group = INITVAL_22;
        35: group = INITVAL_23;
        36: group = INITVAL_24;
        37: group = INITVAL_25;
        38: group = INITVAL_26;
        39: group = INITVAL_27;
        40: group = INITVAL_28;
        41: group = INITVAL_29;
        42: group = INITVAL_2A;
        43: group = INITVAL_2B;
        44: group = INITVAL_2C;
        45: group = INITVAL_2D;
        46: group = INITVAL_2E;
        47: group = INITVAL_2F;
        48: group = INITVAL_30;
        49: group = INITVAL_31;
        50: group = INITVAL_32;
        51: group = INITVAL_33;
        52: group = INITVAL_34;
        53: group = INITVAL_35;
        54: group = INITVAL_36;
        55: group = INITVAL_37;
        56: group = INITVAL_38;
        57: group = INITVAL_39;
        58: group = INITVAL_3A;
        59: group = INITVAL_3B;
        60: group = INITVAL_3C;
        61: group = INITVAL_3D;
        62: group = INITVAL_3E;
        63: group = INITVAL_3F;
      endcase
      rows[r] = group[(r % 16) * 20 +: 18];
    end
    if (CLKAMUX != "CLKA" || CLKBMUX != "CLKB") begin
      $display("DP16KD model: inverted clocks are not modelled");
      $finish;
    end
    if (!((DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36)
          || ((DATA_WIDTH_A == 9 || DATA_WIDTH_A == 18)
              && (DATA_WIDTH_B == 9 || DATA_WIDTH_B == 18)))) begin
      $display("DP16KD model: data widths %0d and %0d are not modelled", DATA_WIDTH_A,
               DATA_WIDTH_B);
      $finish;
    end
  end

  localparam PDP = DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36;
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};

  function [17:0] read_word(input integer width, input [13:0] address);
    begin
      if (width == 18) read_word = rows[address[13:4]];
      else read_word = {9'b0, rows[address[13:4]][address[3] * 9 +: 9]};
    end
  endfunction

  // the read latches (the output without its register) and the output registers
  reg [17:0] latch_a = 0, latch_b = 0, out_a = 0, out_b = 0;
  wire oce_a = OCEAMUX == "INV" ? !OCEA : OCEA;
  wire oce_b = OCEBMUX == "INV" ? !OCEB : OCEB;
  always @(posedge CLKA) begin
    if (!PDP && CEA) latch_a <= read_word(DATA_WIDTH_A, ada);
    if (!PDP && oce_a) out_a <= latch_a;
    if ((CEA && WEA) || RSTA) begin
      $display("DP16KD model: port A writes or resets, which are not modelled");
      $finish;
    end
  end
  always @(posedge CLKB) begin
    if (PDP && CEB) begin
      latch_a <= rows[{adb[13:5], 1'b0}];
      latch_b <= rows[{adb[13:5], 1'b1}];
    end else if (CEB) latch_b <= read_word(DATA_WIDTH_B, adb);
    if (PDP && oce_b) out_a <= latch_a;
    if (oce_b) out_b <= latch_b;
    if ((CEB && WEB) || RSTB) begin
      $display("DP16KD model: port B writes or resets, which are not modelled");
      $finish;
    end
  end
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = REGMODE_A == "OUTREG" ? out_a : latch_a;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = REGMODE_B == "OUTREG" ? out_b : latch_b;
endmodule
`default_nettype wire
